import re

import jinja2
import pytest

from attribution import sql
from attribution.config import Settings


@pytest.fixture
def rendered() -> sql.JobSql:
    return sql.job_sql(Settings.from_env({}))


def creating(statements: tuple[str, ...], name: str) -> str:
    """The one statement that creates table `name`."""
    (found,) = [s for s in statements if re.search(rf"CREATE TABLE {name} \(", s)]
    return found


def test_functions_are_created_before_any_statement_uses_them(rendered: sql.JobSql) -> None:
    created = [i for i, s in enumerate(rendered.ddl) if "CREATE TEMPORARY SYSTEM FUNCTION" in s]
    assert len(created) == 4
    everything = [
        "\n".join(line for line in s.splitlines() if not line.lstrip().startswith("--"))
        for s in rendered.ddl + rendered.inserts
    ]
    used = [i for i, s in enumerate(everything) if re.search(r"\b(JSON_FIELDS|JSON_TIMESTAMP)\(", s)]
    assert used and max(created) < min(used)
    assert not any("JSON_VALUE(" in s for s in everything)  # one parse per record, not per field


def test_each_view_reads_its_payload_through_one_lateral_table(rendered: sql.JobSql) -> None:
    for view, fields in (("clicks_checked", 4), ("checkouts_checked", 10)):
        (statement,) = [s for s in rendered.ddl if f"CREATE TEMPORARY VIEW {view}" in s]
        calls = re.findall(r"LATERAL TABLE\(JSON_FIELDS\(payload, ([^)]*)\)\) AS f", statement)
        assert len(calls) == 1 and calls[0].count("'") == 2 * fields


def test_statements_split_at_line_ends_only() -> None:
    assert sql.statements("CREATE A;\nSELECT ';' ;\n\n") == ["CREATE A", "SELECT ';'"]


def test_every_template_renders_without_leftover_placeholders(rendered: sql.JobSql) -> None:
    for statement in rendered.ddl + rendered.inserts:
        assert "{{" not in statement and "{%" not in statement
        assert statement.strip()


def test_strict_undefined_fails_on_a_misspelt_setting(tmp_path, monkeypatch) -> None:
    (tmp_path / "bad.sql").write_text("SELECT '{{ cfg.no_such_setting }}'")
    monkeypatch.setattr(sql, "TEMPLATE_ROOT", tmp_path)
    with pytest.raises(jinja2.UndefinedError):
        sql.render("bad.sql", Settings.from_env({}))


def test_values_are_quoted_as_sql_literals() -> None:
    s = Settings.from_env({"POSTGRES_PASSWORD": "it's"})
    users = sql.render("source/users.sql", s)
    assert "'password' = 'it''s'" in users
    assert sql.sql_string("a'b") == "'a''b'"


@pytest.mark.parametrize(
    ("seconds", "literal"),
    [
        (15, "INTERVAL '0 00:00:15' DAY TO SECOND"),
        (3600, "INTERVAL '0 01:00:00' DAY TO SECOND"),
        (86400 + 61, "INTERVAL '1 00:01:01' DAY TO SECOND"),
    ],
)
def test_intervals(seconds: int, literal: str) -> None:
    assert sql.sql_interval(seconds) == literal


def test_sources_read_raw_text_with_watermark_and_idleness(rendered: sql.JobSql) -> None:
    clicks = creating(rendered.ddl, "clicks_raw")
    assert "'format' = 'raw'" in clicks  # a non-JSON record cannot fail deserialisation
    assert "'topic' = 'clicks'" in clicks
    assert "WATERMARK FOR event_time AS event_time - INTERVAL '0 00:00:15' DAY TO SECOND" in clicks
    assert "'scan.watermark.idle-timeout' = '10 s'" in clicks
    assert "TIMESTAMP '1970-01-01 00:00:00.000'" in clicks  # rowtime is never NULL


def test_lookup_is_cached_and_sinks_are_keyed(rendered: sql.JobSql) -> None:
    users, sink, dead = (creating(rendered.ddl, n) for n in ("users", "attributed_checkouts", "dead_letters"))
    assert "'lookup.cache' = 'PARTIAL'" in users
    assert "PRIMARY KEY (checkout_id) NOT ENFORCED" in sink
    assert "'table-name' = 'commerce.attributed_checkouts'" in sink
    assert "PRIMARY KEY (source_topic, source_partition, source_offset)" in dead


def test_attribution_is_a_left_interval_join_with_inclusive_bounds(rendered: sql.JobSql) -> None:
    query = " ".join(rendered.inserts[0].split())
    assert "LEFT JOIN users FOR SYSTEM_TIME AS OF c.proc_time AS u ON c.user_id = u.id" in query
    assert re.search(
        r"LEFT JOIN \( SELECT .* FROM clicks_checked WHERE reject_reason IS NULL \) AS cl "
        r"ON cl.user_id = co.user_id AND cl.product_id = co.product_id "
        r"AND cl.event_time BETWEEN co.event_time - INTERVAL '0 01:00:00' DAY TO SECOND AND co.event_time",
        query,
    )
    assert "PARTITION BY checkout_id ORDER BY click_time ASC NULLS LAST, click_id ASC NULLS LAST" in query


def test_window_and_bound_follow_the_configuration() -> None:
    s = Settings.from_env({"ATTRIBUTION_WINDOW_SECONDS": "1800", "OUT_OF_ORDERNESS_SECONDS": "30"})
    job = sql.job_sql(s)
    assert "INTERVAL '0 00:30:00' DAY TO SECOND" in job.inserts[0]
    assert "event_time - INTERVAL '0 00:00:30' DAY TO SECOND" in creating(job.ddl, "clicks_raw")


def test_script_joins_statements(rendered: sql.JobSql) -> None:
    assert rendered.script().count("CREATE TABLE") == 5
    assert rendered.script().count("INSERT INTO") == 2
