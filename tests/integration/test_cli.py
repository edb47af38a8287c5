"""The Makefile targets a data engineer types, run through `make` against the test stack."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import re
import shutil
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from attribution import job, supervision
from attribution.config import PROJECT_ROOT, Settings
from attribution.models import MODELS, PRIMARY
from tests.events import click
from tests.integration.harness import ONE_MODEL_PER_SHAPE, assert_models_exact, pipeline, poll, rows, workload
from tests.integration.test_faults import MARKER_USER, intent_of
from tests.reference import parse_time

pytestmark = pytest.mark.integration


def make(
    settings: Settings, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        env={**os.environ, **settings.to_env(), **(env or {})},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def errors(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_job_when_it_already_runs_leaves_it_alone(settings: Settings) -> None:
    with pipeline(settings, "cli-twice", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        output = make(run.settings, "job").stdout
        assert f"already RUNNING (job id {run.job_id})" in output
        assert [s.job_id for s in job.active_jobs(settings, run.settings.job_name)] == [run.job_id]


def test_stop_job_then_job_resumes_and_fresh_starts_without_state(settings: Settings) -> None:
    with pipeline(settings, "cli-fresh", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        run.wait_for_new_checkpoint()
        assert "with a savepoint" in make(run.settings, "stop-job").stdout
        assert run.current_job_id() is None

        output = make(run.settings, "job").stdout
        assert "Restoring state and offsets from" in output and "savepoint" in output
        make(run.settings, "stop-job")

        output = make(run.settings, "job", "FRESH=1").stdout
        assert "Restoring" not in output
        assert intent_of(settings).restore_from is None
        assert run.current_job_id() is not None


def test_job_refuses_without_a_cluster(settings: Settings) -> None:
    nowhere = dataclasses.replace(settings, flink_rest_port=free_port())
    result = make(nowhere, "job", check=False)
    assert result.returncode != 0
    assert errors(result) == [f"error: no Flink cluster at {nowhere.flink_rest_url}: run `make up` first"]


def test_stopping_a_service_this_stack_does_not_run_is_quiet(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # `make down` stops Prometheus by name; where it is not installed, the stack has no such program.
    with caplog.at_level(logging.INFO, logger="attribution"):
        supervision.stop(settings, "prometheus-not-installed")
    assert caplog.records == []
    assert supervision.running_pid(settings, "jobmanager") is not None


def test_up_refuses_a_port_in_use_with_one_line(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        other = dataclasses.replace(
            settings,
            stack_dir=str(tmp_path / "stack"),
            postgres_port=port,
            kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
            flink_rest_port=free_port(),
            prometheus_port=free_port(),
        )
        result = make(other, "up", check=False)
    assert result.returncode != 0
    assert errors(result) == [
        f"error: port(s) [{port}] in use by processes this stack did not start; stop them or set other "
        "ports (see `python -m attribution --help`)"
    ], result.stderr
    assert "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sql_client_declares_the_job_tables_and_queries_the_live_topics(
    settings: Settings, tmp_path: Path
) -> None:
    with pipeline(settings, "sql-client", models=ONE_MODEL_PER_SHAPE) as run:
        at = datetime(2024, 8, 1, 12)
        run.writer.send(run.clicks, click("sql-client-click", 42, "p42", at), 0)
        result_table = MODELS[PRIMARY].written_table  # as a read-only view of stored_<it>
        # One session: the queries, then three writes that must each fail with their cause. The
        # result tables are views (writing to them by accident fails); the JDBC tables behind them
        # and users refuse writes, because the prompt connects as the read-only role.
        script = tmp_path / "session.sql"
        script.write_text(
            "SHOW TABLES;\nSELECT click_id, product_id FROM clicks LIMIT 1;\n"
            f"INSERT INTO {result_table} SELECT * FROM {result_table};\n"
            f"INSERT INTO stored_{result_table} (checkout_id, user_id) VALUES ('sql-client-write', 1);\n"
            "INSERT INTO users VALUES (-1, 'sql-client-write');\n"
        )
        result = make(run.settings, "sql-client", f"SQL_FILE={script}", check=False)
        output = result.stdout
        tables = set(re.findall(r"^\|\s+(\w+) \|$", output, flags=re.MULTILINE))
        assert {"clicks", "checkouts", "users", PRIMARY, result_table} <= tables, output
        assert re.search(r"\|\s+sql-client-click \|\s+p42 \|", output), output
        assert result.returncode != 0, result
        errors = re.findall(r"^\[ERROR\] (.*)$", output, flags=re.MULTILINE)
        assert len(errors) == 3, output
        assert f"{result_table}' does not exist" in errors[0], errors
        assert all("permission denied" in error for error in errors[1:]), errors
        assert job.active_jobs(settings, f"{run.settings.job_name}-sql-client") == []
        run.assert_healthy()  # the job never noticed


def test_ui_and_viz_print_their_urls_without_a_browser(settings: Settings) -> None:
    with pipeline(settings, "cli-ui", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        over_ssh = {"SSH_CONNECTION": "10.0.0.1 22 10.0.0.2 22"}  # print the URL, open nothing
        ui = make(run.settings, "ui", env=over_ssh)
        assert f"Flink web UI: {settings.flink_rest_url}/#/job/running/{run.job_id}/overview" in ui.stdout
        viz = make(run.settings, "viz", env=over_ssh)
        assert "Grafana runs in the Compose stack only" in viz.stdout
        assert f"Prometheus: http://127.0.0.1:{settings.prometheus_port}/graph?" in viz.stdout


def test_backfill_recomputes_a_cleared_period_exactly(settings: Settings) -> None:
    """docs/operations.md's recipe: part of every model's output is lost; `make backfill` over its
    period, beside the running job, writes it again, and every table equals the reference."""
    load = workload(settings, seed=21, count=1000, user_offset=8_100_000, start=datetime(2024, 6, 14, 9))
    rng = random.Random(21)
    with pipeline(settings, "backfill") as run:
        topic_of = {"clicks": run.clicks, "checkouts": run.checkouts}
        for topic, event in load.events:  # stamped with their own time, as a live producer does
            stamp = int(parse_time(event["datetime_occured"]).replace(tzinfo=UTC).timestamp() * 1000)
            run.writer.send(topic_of[topic], event, rng.randrange(settings.topic_partitions), stamp)
        run.flush_through(load.last_event_time + timedelta(minutes=1), MARKER_USER)
        assert_models_exact(run.settings, load)

        times = sorted(a.checkout_time for a in load.expected.values())
        since, until = times[len(times) // 3], times[2 * len(times) // 3]
        cleared = [k for k, a in load.expected.items() if since <= a.checkout_time < until]
        with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            for model in settings.models:  # a touches model's view deletes from its table
                cur.execute(
                    f"DELETE FROM {settings.model_table(model)} WHERE checkout_id = ANY(%s)", (cleared,)
                )
        conn.close()
        assert not rows(settings, cleared)

        result = make(run.settings, "backfill", f"SINCE={since.isoformat()}", f"UNTIL={until.isoformat()}")
        assert "finished" in result.stdout, result.stdout
        assert_models_exact(run.settings, load, timeout=30)
        run.assert_healthy()  # the running job went on beside it


def test_the_prompt_edits_recalls_history_and_runs_multi_line_statements_in_a_terminal(
    settings: Settings,
) -> None:
    """`make sql-client` in a real terminal (tmux): a statement typed over two lines runs at its
    ';', the up arrow recalls it, Enter runs it again, and the history is kept on disk."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux")
    server = f"sql-client-{os.getpid()}"  # a tmux server of its own, started with this environment
    history = settings.stack_path / "sql-client-history"

    def tmux(*args: str) -> str:
        done = subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True, check=True)
        return done.stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-S", "-200")

    subprocess.run(
        [
            "tmux",
            "-L",
            server,
            "new-session",
            "-d",
            "-x",
            "150",
            "-y",
            "60",
            "make --no-print-directory sql-client",
        ],
        env={**os.environ, **settings.to_env()},
        cwd=PROJECT_ROOT,
        check=True,
    )
    try:
        poll(lambda: "flink-sql>" in screen(), 120, "the prompt")
        tmux("send-keys", "SELECT 40 + 2", "Enter")  # no ';' yet: a second line
        tmux("send-keys", "AS answer\\;", "Enter")  # tmux reads a bare trailing ';' as its own separator
        poll(lambda: screen().count("1 row in set") == 1, 90, "the first answer")
        assert re.search(r"\|\s+answer \|", screen()) and re.search(r"\|\s+42 \|", screen()), screen()
        tmux("send-keys", "Up")
        poll(lambda: screen().rstrip().endswith("AS answer;"), 10, "the statement recalled")
        tmux("send-keys", "Enter")
        poll(lambda: screen().count("1 row in set") == 2, 90, "the answer again")
        tmux("send-keys", "C-d")
        # prompt_toolkit keeps each line of an entry behind a "+"
        poll(lambda: "+SELECT 40 + 2\n+AS answer;" in history.read_text(), 30, "the history on disk")
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True)
