"""The SQL prompt of `make sql-client` on the running cluster (docs/sql-prompt.md): the job's
tables and views declared from the same templates, line editing and history (prompt_toolkit), and
statements split by sqlparse, typed or from a file.

`python -m attribution.prompt [--file F]`; `make sql-client` runs it with the cluster's jars.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

from attribution import sql
from attribution.config import Settings, settings_or_exit
from attribution.job import root_cause
from attribution.pipeline import job_configuration


def split_statements(text: str) -> list[str]:
    """SQL text as statements, by sqlparse (quotes, comments and `;` inside strings respected),
    without their closing semicolons."""
    import sqlparse

    return [
        s.strip().removesuffix(";").strip()
        for s in sqlparse.split(text)
        if s.strip().removesuffix(";").strip()
    ]


def sql_shell(settings: Settings, script: str | None) -> int:
    """A SQL prompt on the cluster, with the tables and views of sql.sql_client_init declared:
    each statement runs as `make sql-client` types it, a SELECT as a job of its own whose rows are
    printed as they come (Ctrl-C stops it). `script`: run this text's statements and exit.
    (Flink's own sql-client.sh needs flink-sql-gateway, which the apache-flink wheel lacks.)"""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.new_instance().in_streaming_mode().build())
    config = {**job_configuration(settings), "pipeline.name": f"{settings.job_name}-sql-client"}
    for key in [k for k in config if k.startswith(("execution.checkpointing", "state."))]:
        del config[key]  # a query keeps no state worth a checkpoint
    config["restart-strategy.type"] = "none"  # a statement that fails is an answer, not retried
    for key, value in config.items():
        t_env.get_config().set(key, value)
    for statement in sql.statements(sql.sql_client_init(settings)):
        if not statement.startswith("SET "):
            t_env.execute_sql(statement)

    # Killed (a timeout, `kill`): stop the query's job on the way out, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def run(statement: str) -> bool:
        result = None
        try:
            result = t_env.execute_sql(statement)
            if sql.is_insert(statement):
                result.wait()  # until written, or failed (the reader role may write nothing)
            result.print()
            return True
        except KeyboardInterrupt:
            print("(stopped)")
            return True
        except Exception as error:  # a mistyped query is an answer, not the end of the session
            print(f"[ERROR] {root_cause(str(error))}")
            return False
        finally:
            client = result.get_job_client() if result is not None else None
            if client is not None and not client.get_job_status().result().is_globally_terminal_state():
                client.cancel()

    if script is None and not sys.stdin.isatty():
        script = sys.stdin.read()  # piped: the statements, then the end
    if script is not None:
        ok = [run(statement) for statement in split_statements(script)]
        return 0 if all(ok) else 1
    print("Statements end with ';' (Enter on an unfinished one starts a new line). Try: SHOW TABLES;")
    print("Up/Down: history (kept in the stack directory). Ctrl-C stops a query, Ctrl-D quits.")
    session = prompt_session(settings.stack_path / "sql-client-history")
    while True:
        try:
            text = session.prompt("flink-sql> ")
        except EOFError:
            return 0
        except KeyboardInterrupt:
            continue  # the line is dropped, as in a shell
        for statement in split_statements(text):
            run(statement)


def prompt_session(history: Path) -> Any:
    """A prompt_toolkit session: line editing, history across sessions in `history`, and Enter
    that runs the text once it ends with ';' (before that it starts a new line)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    keys = KeyBindings()

    @keys.add("enter")
    def _(event: Any) -> None:
        buffer = event.current_buffer
        if buffer.text.strip().endswith(";") or not buffer.text.strip():
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    history.parent.mkdir(parents=True, exist_ok=True)
    return PromptSession(
        history=FileHistory(str(history)),
        multiline=True,
        key_bindings=keys,
        prompt_continuation=lambda width, *_: "-> ".rjust(width),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attribution.prompt", description=__doc__)
    parser.add_argument("--file", type=Path, help="run this file's statements and exit")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if args.file:
        # A file runs to its end: the topics are read up to where they end now.
        bounded = dataclasses.replace(settings, scan_bounded_mode="latest-offset")
        return sql_shell(bounded, args.file.read_text())
    return sql_shell(settings, None)


if __name__ == "__main__":
    sys.exit(main())
