"""Renders the job's Flink SQL from the Jinja2 templates in code/source, code/process, code/sink."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2

from attribution.config import PROJECT_ROOT, Settings

TEMPLATE_ROOT = PROJECT_ROOT / "code"

# Order matters: functions before the tables that use them, tables before the views that read
# them, views before the INSERTs.
DDL_TEMPLATES = (
    "functions/json.sql",
    "functions/metrics.sql",
    "source/clicks.sql",
    "source/checkouts.sql",
    "source/users.sql",
    "sink/attributed_checkouts.sql",
    "sink/dead_letters.sql",
    "process/parse_clicks.sql",
    "process/parse_checkouts.sql",
)
INSERT_TEMPLATES = (
    "process/attribute_checkouts.sql",
    "process/dead_letters.sql",
)


def sql_string(value: object) -> str:
    """A single-quoted SQL string literal (quotes doubled), for values such as passwords."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_interval(seconds: int) -> str:
    """A day-to-second interval literal; Flink rejects INTERVAL 'n' SECOND beyond 2 digits."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}' DAY TO SECOND"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_ROOT)),
        undefined=jinja2.StrictUndefined,  # a misspelt setting fails rendering, not the job
        keep_trailing_newline=False,
        autoescape=False,
    )
    env.filters["sql_string"] = sql_string
    env.filters["sql_interval"] = sql_interval
    return env


def render(template: str, settings: Settings) -> str:
    return _environment().get_template(template).render(cfg=settings).strip()


@dataclass(frozen=True)
class JobSql:
    ddl: tuple[str, ...]
    inserts: tuple[str, ...]

    def script(self) -> str:
        """Everything as one SQL script, for reading or for the SQL client."""
        return ";\n\n".join(self.ddl + self.inserts) + ";\n"


def statements(sql: str) -> list[str]:
    """A rendered template split into statements: a template may hold several, each ending with a
    semicolon at the end of a line (a semicolon inside a line, as in a string, does not split)."""
    return [part.strip() for part in re.split(r";[ \t]*$", sql, flags=re.MULTILINE) if part.strip()]


def job_sql(settings: Settings) -> JobSql:
    return JobSql(
        ddl=tuple(s for t in DDL_TEMPLATES for s in statements(render(t, settings))),
        inserts=tuple(s for t in INSERT_TEMPLATES for s in statements(render(t, settings))),
    )
