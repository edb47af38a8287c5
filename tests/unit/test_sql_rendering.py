import re

import jinja2
import pytest

from attribution import sql, templates
from attribution.config import PROJECT_ROOT, Settings
from attribution.models import MODELS, PRIMARY


@pytest.fixture
def rendered() -> sql.JobSql:
    return sql.job_sql(Settings.from_env({}))


def creating(statements: tuple[str, ...], name: str) -> str:
    """The one statement that creates table `name`."""
    (found,) = [s for s in statements if re.search(rf"CREATE TABLE {name} \(", s)]
    return found


def code(statement: str) -> str:
    """A statement without its comment lines, whitespace collapsed."""
    return " ".join(
        " ".join(line for line in statement.splitlines() if not line.lstrip().startswith("--")).split()
    )


def test_functions_are_created_before_any_statement_uses_them(rendered: sql.JobSql) -> None:
    created = [i for i, s in enumerate(rendered.ddl) if "CREATE TEMPORARY SYSTEM FUNCTION" in s]
    assert len(created) == 4
    everything = [code(s) for s in rendered.ddl + rendered.pipeline]
    used = [i for i, s in enumerate(everything) if re.search(r"\b(JSON_FIELDS|JSON_TIMESTAMP)\(", s)]
    assert used and max(created) < min(used)
    assert not any("JSON_VALUE(" in s for s in everything)  # one parse per record, not per field


def test_each_view_reads_its_payload_through_one_lateral_table(rendered: sql.JobSql) -> None:
    for view, fields in (("clicks_checked", 6), ("checkouts_checked", 13)):
        query = rendered.views[view]
        calls = re.findall(r"LATERAL TABLE\(JSON_FIELDS\(payload, (.*?)\)\) AS parsed", query)
        assert len(calls) == 1 and calls[0].count("'") == 2 * fields


def test_statements_split_at_line_ends_only() -> None:
    assert sql.statements("CREATE A;\nSELECT ';' ;\n\n") == ["CREATE A", "SELECT ';'"]


def test_views_and_inserts_are_recognised_after_comments() -> None:
    assert sql.view_definition("-- a view\n-- x\nCREATE TEMPORARY VIEW v AS\nSELECT 1") == ("v", "SELECT 1")
    assert sql.view_definition("INSERT INTO t SELECT 1") is None
    assert sql.is_insert("-- why\nINSERT INTO t SELECT 1")
    assert not sql.is_insert("CREATE TEMPORARY VIEW v AS SELECT 'INSERT INTO t'")


def test_every_template_renders_without_leftover_placeholders(rendered: sql.JobSql) -> None:
    for statement in rendered.ddl + rendered.pipeline:
        assert "{{" not in statement and "{%" not in statement
        assert statement.strip()


def test_strict_undefined_fails_on_a_misspelt_setting() -> None:
    with pytest.raises(jinja2.UndefinedError):
        sql.render_string("SELECT '{{ cfg.no_such_setting }}'", Settings.from_env({}))


def test_an_unknown_source_or_sink_fails_rendering() -> None:
    with pytest.raises(jinja2.UndefinedError, match="no source 'clicks'"):
        sql.render("process/parse_clicks.sql", Settings.from_env({}), sources={})
    with pytest.raises(jinja2.UndefinedError, match="no sink 'dead_letters'"):
        sql.render("process/dead_letters.sql", Settings.from_env({}), sinks={})


def test_the_pipeline_reads_and_writes_only_the_tables_it_is_given() -> None:
    sources = {"clicks": "in_clicks", "checkouts": "in_checkouts", "users": "in_users"}
    sinks = {"first_click": "out_rows", "dead_letters": "out_dead", "metrics": "out_metrics"}
    templates = sql.PARSE_TEMPLATES + sql.OUTPUT_TEMPLATES
    statements = [code(s) for s in sql.template_statements(templates, Settings.from_env({}), sources, sinks)]
    tables = set(sql.PRODUCTION_SOURCES.values()) | set(sql.PRODUCTION_SINKS.values())
    for statement in statements:
        assert not set(re.findall(r"(?:FROM|JOIN|INSERT INTO) (\w+)", statement)) & tables, statement
    targets = {t for s in statements if sql.is_insert(s) for t in re.findall(r"^INSERT INTO (\w+)", s)}
    assert targets == set(sinks.values())


def test_the_rule_is_a_chain_of_named_steps_without_instrumentation(rendered: sql.JobSql) -> None:
    rule = sql.template_statements(("process/attribute_checkouts.sql",), Settings.from_env({}))
    steps = [step for s in rule[:-1] if (step := sql.view_definition(s))]
    assert len(steps) == len(rule) - 1, "every statement before the INSERT is a view"
    names = [name for name, _ in steps]
    assert names == ["checkouts_enriched", "checkouts_compact", "click_candidates", "first_click"]
    # Each step reads the one before it (and the first the parsed checkouts).
    reads = ["checkouts_checked", *names]
    for (_, query), previous in zip(steps, reads, strict=False):
        assert re.search(rf"\bFROM {previous}\b", query), (previous, query)
    assert sql.is_insert(rule[-1]) and "FROM first_click" in rule[-1]
    for statement in rule:
        assert not re.search(r"COUNTED|OBSERVED_LATENCY|CURRENT_WATERMARK", code(statement)), statement


def test_each_model_adds_its_own_steps_and_sink_and_the_default_is_first_click_alone() -> None:
    def rule(models: str) -> tuple[str, ...]:
        settings = Settings.from_env({"ATTRIBUTION_MODELS": models})
        return sql.template_statements(("process/attribute_checkouts.sql",), settings)

    def targets(statements: tuple[str, ...]) -> list[str]:
        return [re.findall(r"^INSERT INTO (\w+)", s)[0] for s in statements if sql.is_insert(s)]

    default = rule("first_click")
    assert sql.template_statements(("process/attribute_checkouts.sql",), Settings.from_env({})) == default
    assert targets(default) == [MODELS["first_click"].written_table]
    # In the registry's order, whatever the order given; each into its own sink.
    every = rule(",".join(reversed(MODELS)))
    assert targets(every) == [model.written_table for model in MODELS.values()]
    # The first_click statements are the same text with or without the other models.
    assert set(default) <= set(every)
    for statement in every:
        assert not re.search(r"COUNTED|OBSERVED_LATENCY|CURRENT_WATERMARK", code(statement)), statement


def test_a_comment_line_ending_in_a_semicolon_is_refused() -> None:
    with pytest.raises(ValueError, match="comment line ends with ';'"):
        sql.statements("SELECT 1;\n-- note;\nSELECT 2")


def test_the_metrics_tap_the_steps_into_their_own_sink(rendered: sql.JobSql) -> None:
    taps = sql.template_statements(("process/metrics.sql",), Settings.from_env({}))
    assert taps and all(sql.is_insert(t) and t.startswith("INSERT INTO job_metrics") for t in code_all(taps))
    read = {re.findall(r"FROM (\w+)", code(t))[0] for t in taps}
    assert read <= set(rendered.views)  # steps of the pipeline, never a source: nothing read twice
    metrics = {m for t in taps for m in re.findall(r"'(\w+)', '(\w+)'\) AS label_value", code(t))}
    # The names Grafana and `make status` read: flink_..._attribution_<label>_<metric>.
    assert metrics == {
        ("checkouts", "user"),
        ("checkouts_unattributed", "user"),
        ("late_events", "topic"),
        ("malformed_records", "reason"),
    }
    assert any("OBSERVED_LATENCY(checkout_time, 'UTC', 'checkout_latency_ms')" in t for t in taps)


def code_all(statements: tuple[str, ...]) -> list[str]:
    return [code(s) for s in statements]


def test_validation_macros_are_closed_expressions_and_constants_are_written_once() -> None:
    settings = Settings.from_env({})
    macros = {
        "reject_reason('click_id')": "process/_validation.sql",
        "reject_reason('checkout_id', amount='total_amount')": "process/_validation.sql",
        "text('a')": "process/_validation.sql",
        "int_field('a')": "process/_validation.sql",
        "amount_field('a')": "process/_validation.sql",
        "field('a')": "process/_validation.sql",
        "occurred_at()": "source/_event_time.sql",
        "unusable_time()": "source/_event_time.sql",
    }
    for call, template in macros.items():
        name = call.split("(")[0]
        text = f'{{% from "{template}" import {name} with context %}}{{{{ {call} }}}}'
        expression = code(sql.render_string(text, settings))
        # Closed: usable as `SELECT <expression> AS x` on its own.
        words = re.findall(r"\b(CASE|END)\b", expression)
        assert words.count("CASE") == words.count("END"), (call, expression)
        assert expression.count("(") == expression.count(")"), (call, expression)
    sources = "\n".join(
        p.read_text() for p in (PROJECT_ROOT / "code").rglob("*.sql") if not p.match("functions/*.sql")
    )
    assert sources.count("1970-01-01") == 1
    assert sources.count("JSON_TIMESTAMP(") == 1


def test_values_are_quoted_as_sql_literals() -> None:
    s = Settings.from_env({"POSTGRES_PASSWORD": "it's"})
    users = sql.render("source/users.sql", s)
    assert "'password' = 'it''s'" in users
    assert templates.sql_string("a'b") == "'a''b'"


@pytest.mark.parametrize(
    ("seconds", "literal"),
    [
        (15, "INTERVAL '0 00:00:15' DAY TO SECOND"),
        (3600, "INTERVAL '0 01:00:00' DAY TO SECOND"),
        (86400 + 61, "INTERVAL '1 00:01:01' DAY TO SECOND"),
    ],
)
def test_intervals(seconds: int, literal: str) -> None:
    assert templates.sql_interval(seconds) == literal


def test_sources_read_raw_text_with_watermark_and_idleness(rendered: sql.JobSql) -> None:
    clicks = creating(rendered.ddl, "clicks_raw")
    assert "'format' = 'raw'" in clicks  # a non-JSON record cannot fail deserialisation
    assert "'topic' = 'clicks'" in clicks
    assert "WATERMARK FOR event_time AS event_time - INTERVAL '0 00:00:15' DAY TO SECOND" in clicks
    assert "'scan.watermark.idle-timeout' = '10 s'" in clicks
    assert "TIMESTAMP '1970-01-01 00:00:00.000'" in clicks  # rowtime is never NULL


def test_lookup_is_cached_and_sinks_are_keyed(rendered: sql.JobSql) -> None:
    primary = sql.PRODUCTION_SINKS[PRIMARY]
    users, sink, dead = (creating(rendered.ddl, n) for n in ("users", primary, "dead_letters"))
    assert "'lookup.cache' = 'PARTIAL'" in users
    assert "PRIMARY KEY (checkout_id) NOT ENFORCED" in sink
    assert f"'table-name' = '{Settings.from_env({}).sink_table}'" in sink
    assert "PRIMARY KEY (source_topic, source_partition, source_offset, kafka_timestamp)" in dead
    assert "'connector' = 'blackhole'" in creating(rendered.ddl, "job_metrics")


def test_attribution_is_a_left_interval_join_with_inclusive_bounds(rendered: sql.JobSql) -> None:
    enriched, candidates, first = (
        code(rendered.views[v]) for v in ("checkouts_enriched", "click_candidates", "first_click")
    )
    assert "LEFT JOIN users FOR SYSTEM_TIME AS OF c.proc_time AS u ON u.id = c.user_id" in enriched
    assert re.search(
        r"LEFT JOIN \( SELECT .* FROM clicks_checked WHERE reject_reason IS NULL \) AS cl "
        r"ON cl.user_id = co.user_id AND cl.product_id = co.product_id "
        r"AND cl.event_time BETWEEN co.event_time - INTERVAL '0 01:00:00' DAY TO SECOND AND co.event_time$",
        candidates,
    )
    # The first delivery of a checkout_id, then its earliest click.
    assert (
        "PARTITION BY checkout_id ORDER BY details.delivered_at, details.delivery_partition, "
        "details.delivery_offset, click_time ASC NULLS LAST, click_id ASC NULLS LAST"
    ) in first


def test_window_and_bound_follow_the_configuration() -> None:
    s = Settings.from_env({"ATTRIBUTION_WINDOW_SECONDS": "1800", "OUT_OF_ORDERNESS_SECONDS": "30"})
    job = sql.job_sql(s)
    assert "INTERVAL '0 00:30:00' DAY TO SECOND" in job.views["click_candidates"]
    assert "event_time - INTERVAL '0 00:00:30' DAY TO SECOND" in creating(job.ddl, "clicks_raw")


def test_the_script_is_every_statement_in_order(rendered: sql.JobSql) -> None:
    assert tuple(sql.statements(rendered.script())) == rendered.ddl + rendered.pipeline
    # Every production table is declared once, and every model's sink with it.
    created = [name for s in rendered.ddl for name in re.findall(r"^CREATE TABLE (\w+)", s, re.MULTILINE)]
    assert sorted(created) == sorted({*sql.PRODUCTION_SOURCES.values(), *sql.PRODUCTION_SINKS.values()})


def test_a_backfill_reads_from_a_timestamp_or_from_offsets() -> None:
    stamped = Settings.from_env(
        {
            "KAFKA_SCAN_STARTUP_MODE": "timestamp",
            "KAFKA_SCAN_STARTUP_TIMESTAMP": "2024-03-01T09:00:00+01:00",
            "KAFKA_SCAN_BOUNDED_MODE": "timestamp",
            "KAFKA_SCAN_BOUNDED_TIMESTAMP": "2024-03-01 10:00:00",  # UTC
        }
    )
    job = sql.job_sql(stamped)
    clicks = creating(job.ddl, "clicks_raw")
    assert "'scan.startup.mode' = 'timestamp'" in clicks
    assert "'scan.startup.timestamp-millis' = '1709280000000'" in clicks  # 08:00 UTC
    # To the topics' end, and the period's bounds in the job itself, whatever the broker answers.
    assert "'scan.bounded.mode' = 'latest-offset'" in clicks
    for view in ("clicks_checked", "checkouts_checked"):
        assert code(job.views[view]).endswith(
            "WHERE kafka_timestamp >= TO_TIMESTAMP_LTZ(1709280000000, 3)"
            " AND kafka_timestamp < TO_TIMESTAMP_LTZ(1709287200000, 3)"
        ), view
    offsets = Settings.from_env(
        {
            "KAFKA_SCAN_STARTUP_MODE": "specific-offsets",
            "CLICKS_STARTUP_OFFSETS": "partition:0,offset:42;partition:1,offset:7",
            "CHECKOUTS_STARTUP_OFFSETS": "partition:0,offset:3",
        }
    )
    ddl = sql.job_sql(offsets).ddl
    assert "'scan.startup.specific-offsets' = 'partition:0,offset:42;partition:1,offset:7'" in creating(
        ddl, "clicks_raw"
    )
    assert "'scan.startup.specific-offsets' = 'partition:0,offset:3'" in creating(ddl, "checkouts_raw")
    default = sql.job_sql(Settings.from_env({}))
    assert "timestamp-millis" not in creating(default.ddl, "clicks_raw")
    assert "kafka_timestamp >=" not in default.views["clicks_checked"]


def test_the_prompt_splits_statements_as_sql_does() -> None:
    from attribution.prompt import split_statements

    assert split_statements("SELECT 1 AS a; SELECT 2 AS b;") == ["SELECT 1 AS a", "SELECT 2 AS b"]
    assert split_statements("SELECT ';' AS s;\n-- a note; with a semicolon\nSELECT 2") == [
        "SELECT ';' AS s",
        "-- a note; with a semicolon\nSELECT 2",
    ]
    assert split_statements("  ;\n") == []
