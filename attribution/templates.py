"""The one Jinja2 environment of the project: the job's SQL (code/), the Flink, Prometheus and
supervisord configs (conf/, prometheus/). Undefined names fail rendering, not the service."""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any

import jinja2

from attribution.config import ID_MAX_CHARS, PROJECT_ROOT, schema_of, unqualified
from attribution.models import MODELS

# Where templates live: the job's SQL under code/ (imported by their path there), and the config
# files under the folders named here (by their path from the project root).
SQL_TEMPLATES = PROJECT_ROOT / "code"
CONFIG_TEMPLATE_FOLDERS = ("conf", "postgres", "prometheus")


def sql_string(value: object) -> str:
    """A single-quoted SQL string literal (quotes doubled), for values such as passwords."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_interval(seconds: int) -> str:
    """A day-to-second interval literal; Flink rejects INTERVAL 'n' SECOND beyond 2 digits."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}' DAY TO SECOND"


def supervisor_value(value: object) -> str:
    """A value for supervisord's config: '%' starts its own expansions."""
    return str(value).replace("%", "%%")


def supervisor_word(value: object) -> str:
    """One word of a supervisord command or environment value (it splits them with shlex)."""
    return supervisor_value(shlex.quote(str(value)))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(str(SQL_TEMPLATES)),
                jinja2.PrefixLoader(
                    {
                        folder: jinja2.FileSystemLoader(str(PROJECT_ROOT / folder))
                        for folder in CONFIG_TEMPLATE_FOLDERS
                    }
                ),
            ]
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )
    env.filters["sql_string"] = sql_string
    env.filters["sql_interval"] = sql_interval
    env.filters["supervisor_value"] = supervisor_value
    env.filters["supervisor_word"] = supervisor_word
    env.filters["schema_of"] = schema_of
    env.filters["unqualified"] = unqualified
    env.globals["id_max_chars"] = ID_MAX_CHARS
    env.globals["registry"] = MODELS
    return env


def render_file(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)
