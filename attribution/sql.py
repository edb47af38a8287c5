"""Renders the job's Flink SQL from the Jinja2 templates in code/functions, code/source, code/sink
and code/process.

The pipeline's templates (code/process) name their inputs and outputs through `source('clicks')`
and `sink('first_click')` (a model's name, dead_letters or metrics), so that the same SQL runs
against the production tables (the names below) or against the bounded inputs and collecting
outputs of the unit tests.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2

from attribution.config import Settings
from attribution.models import MODELS
from attribution.templates import environment, sql_string

# The pipeline's functions (created by define_pipeline itself: they are its code, not its I/O).
FUNCTION_TEMPLATES = (
    "functions/json.sql",
    "functions/metrics.sql",
)
# The production tables: Kafka sources, the JDBC lookup table, the JDBC sinks, the metrics' sink.
TABLE_TEMPLATES = (
    "source/clicks.sql",
    "source/checkouts.sql",
    "source/users.sql",
    "sink/models.sql",
    "sink/dead_letters.sql",
    "sink/metrics.sql",
)
# Parsing and validation of the raw events: the views every output template reads.
PARSE_TEMPLATES = (
    "process/parse_clicks.sql",
    "process/parse_checkouts.sql",
)
# The job's outputs: views and the INSERTs that end in them. Order matters: a view before what
# reads it (metrics.sql taps the views of the other two).
OUTPUT_TEMPLATES = (
    "process/attribute_checkouts.sql",
    "process/dead_letters.sql",
    "process/metrics.sql",
)

# What source(...) and sink(...) name in production: the tables of TABLE_TEMPLATES.
PRODUCTION_SOURCES = {"clicks": "clicks_raw", "checkouts": "checkouts_raw", "users": "users"}
PRODUCTION_SINKS = {
    **{model.name: model.written_table for model in MODELS.values()},
    "dead_letters": "dead_letters",
    "metrics": "job_metrics",
}


def _lookup(kind: str, tables: Mapping[str, str]):
    def name(key: str) -> str:
        if key not in tables:
            raise jinja2.UndefinedError(f"no {kind} {key!r} given (have: {', '.join(sorted(tables))})")
        return tables[key]

    return name


def render(
    template: str,
    settings: Settings,
    sources: Mapping[str, str] = PRODUCTION_SOURCES,
    sinks: Mapping[str, str] = PRODUCTION_SINKS,
) -> str:
    """A template (path under code/) rendered with the settings as `cfg`; `source(...)` and
    `sink(...)` give the names of the pipeline's input and output tables."""
    return _render(environment().get_template(template), settings, sources, sinks)


def render_string(
    text: str,
    settings: Settings,
    sources: Mapping[str, str] = PRODUCTION_SOURCES,
    sinks: Mapping[str, str] = PRODUCTION_SINKS,
) -> str:
    """SQL text rendered like a template under code/ (it may import their macros)."""
    return _render(environment().from_string(text), settings, sources, sinks)


def _render(
    template: jinja2.Template, settings: Settings, sources: Mapping[str, str], sinks: Mapping[str, str]
) -> str:
    return template.render(
        cfg=settings, source=_lookup("source", sources), sink=_lookup("sink", sinks)
    ).strip()


def statements(sql: str) -> list[str]:
    """A rendered template split into statements: a template may hold several, each ending with a
    semicolon at the end of a line (a semicolon inside a line, as in a string, does not split)."""
    parts = [part.strip() for part in re.split(r";[ \t]*$", sql, flags=re.MULTILINE) if part.strip()]
    for part in parts:
        if all(line.lstrip().startswith("--") for line in part.splitlines() if line.strip()):
            raise ValueError(f"a SQL comment line ends with ';' (it splits the statement): {part[-80:]!r}")
    return parts


_LEADING_COMMENTS = r"(?:[ \t]*--[^\n]*\n|\s)*"
_VIEW = re.compile(_LEADING_COMMENTS + r"CREATE TEMPORARY VIEW (\w+) AS\s(.*)", re.DOTALL)
_INSERT = re.compile(_LEADING_COMMENTS + r"INSERT INTO ", re.DOTALL)


def view_definition(statement: str) -> tuple[str, str] | None:
    """(name, query) of a `CREATE TEMPORARY VIEW name AS query` statement, else None."""
    match = _VIEW.match(statement)
    return (match.group(1), match.group(2).strip()) if match else None


def is_insert(statement: str) -> bool:
    return _INSERT.match(statement) is not None


def template_statements(
    templates: tuple[str, ...],
    settings: Settings,
    sources: Mapping[str, str] = PRODUCTION_SOURCES,
    sinks: Mapping[str, str] = PRODUCTION_SINKS,
) -> tuple[str, ...]:
    return tuple(s for t in templates for s in statements(render(t, settings, sources, sinks)))


@dataclass(frozen=True)
class JobSql:
    ddl: tuple[str, ...]  # functions and production tables
    pipeline: tuple[str, ...]  # views and INSERTs, in order

    @property
    def inserts(self) -> tuple[str, ...]:
        return tuple(s for s in self.pipeline if is_insert(s))

    @property
    def views(self) -> dict[str, str]:
        return dict(v for v in map(view_definition, self.pipeline) if v)

    def script(self) -> str:
        """Everything as one SQL script, for reading or for the SQL client (which expands a view
        in every statement that reads it: the same results, without the job's sharing of steps,
        see define_pipeline)."""
        return ";\n\n".join(self.ddl + self.pipeline) + ";\n"


def job_sql(settings: Settings) -> JobSql:
    """The production job's statements (what `make sql` prints)."""
    return JobSql(
        ddl=template_statements(FUNCTION_TEMPLATES + TABLE_TEMPLATES, settings),
        pipeline=template_statements(PARSE_TEMPLATES + OUTPUT_TEMPLATES, settings),
    )


# Read in Flink's SQL client: the job's parsed inputs under the names a user expects.
CLIENT_VIEWS = (
    "CREATE TEMPORARY VIEW clicks AS\n"
    "SELECT click_id, user_id, product_id, event_time, kafka_topic, kafka_partition, kafka_offset\n"
    "FROM clicks_checked WHERE reject_reason IS NULL",
    "CREATE TEMPORARY VIEW checkouts AS\n"
    "SELECT checkout_id, user_id, product_id, payment_method, total_amount, shipping_address,\n"
    "    billing_address, user_agent, ip_address, event_time, proc_time\n"
    "FROM checkouts_checked WHERE reject_reason IS NULL",
    "CREATE TEMPORARY VIEW rejected AS\n"
    "SELECT kafka_topic, kafka_partition, kafka_offset, reject_reason, CAST(payload AS STRING) AS payload\n"
    "FROM clicks_checked\n"
    "WHERE reject_reason IS NOT NULL\n"
    "UNION ALL\n"
    "SELECT kafka_topic, kafka_partition, kafka_offset, reject_reason, CAST(payload AS STRING) AS payload\n"
    "FROM checkouts_checked\n"
    "WHERE reject_reason IS NOT NULL",
)
SINK_TEMPLATES = (
    "sink/models.sql",
    "sink/dead_letters.sql",
)


def sql_client_init(settings: Settings) -> str:
    """The init script of `make sql-client`: the job's functions, sources, parsing and rule steps,
    from the same templates and settings as the job, reading with a consumer group of its own;
    `clicks`, `checkouts` and `rejected` as views of the parsed events; the result tables as
    read-only views (an INSERT into a view fails), their JDBC tables renamed stored_*."""
    # As the reader role: a write to a stored_* table or users fails in Postgres.
    client = dataclasses.replace(
        settings.as_role("reader"), consumer_group_id=f"{settings.consumer_group_id}-sql-client"
    )
    sources = tuple(t for t in TABLE_TEMPLATES if t.startswith("source/"))
    rule = tuple(
        s for s in template_statements(("process/attribute_checkouts.sql",), client) if not is_insert(s)
    )
    sinks: list[str] = []
    for statement in template_statements(SINK_TEMPLATES, client):
        name = re.findall(r"CREATE TABLE (\w+)", statement)[0]
        sinks += [
            statement,
            f"ALTER TABLE {name} RENAME TO stored_{name}",
            f"CREATE TEMPORARY VIEW {name} AS SELECT * FROM stored_{name}",
        ]
    statements = (
        f"SET 'table.local-time-zone' = {sql_string(settings.event_time_zone)}",
        "SET 'sql-client.execution.result-mode' = 'tableau'",
        *template_statements(FUNCTION_TEMPLATES + sources + PARSE_TEMPLATES, client),
        *CLIENT_VIEWS,
        *rule,
        *sinks,
    )
    return ";\n\n".join(statements) + ";\n"
