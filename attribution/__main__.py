"""Command line of the embedded stack: `python -m attribution {up,job,datagen,run,status,down,...}`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import webbrowser
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from attribution import health, job, keeper, logs, provision, services, stack, supervision
from attribution.account import AccountError
from attribution.config import ConfigError, Settings, describe
from attribution.models import MODELS
from attribution.services import StackError
from attribution.supervision import SupervisionError


def watch_query(settings: Settings) -> str:
    return (
        "SELECT checkout_id, click_id, checkout_time, click_time, user_name "
        f"FROM {settings.sink_table} ORDER BY checkout_time DESC LIMIT 5;"
    )


def cmd_up(settings: Settings, _: argparse.Namespace) -> None:
    stack.up(settings)
    print(f"Stack is up. Flink UI: {settings.flink_rest_url}")


def cmd_down(settings: Settings, _: argparse.Namespace) -> None:
    stack.down(settings)


def cmd_job(settings: Settings, args: argparse.Namespace) -> None:
    if stack.flink_overview(settings) is None:
        raise StackError(f"no Flink cluster at {settings.flink_rest_url}: run `make up` first")
    if stack.flink_jars_stale(settings):
        raise StackError("the UDF jar was rebuilt after Flink started: `make up` restarts Flink to load it")
    slots = (stack.flink_overview(settings) or {}).get("slots-total", 0)
    if slots < settings.parallelism:
        # Not an error: TaskManagers may still be registering (Compose, --scale); Flink waits.
        print(
            f"warning: FLINK_PARALLELISM={settings.parallelism} but the cluster has {slots} slots now; "
            "the job waits for more TaskManagers (or lower FLINK_PARALLELISM)"
        )
    try:
        job_id = keeper.start_job(settings, fresh=args.fresh, savepoint=args.savepoint)
        job.wait_until_running(settings, job_id)
    except job.JobError as error:
        hint = " If the SQL changed since its state was written, start without it: `make job FRESH=1`."
        raise job.JobError(f"{error}{hint}") from None
    print(
        f"{settings.job_name} is RUNNING (job id {job_id}): {settings.flink_rest_url}/#/job/running/{job_id}"
    )


def cmd_stop_job(settings: Settings, _: argparse.Namespace) -> None:
    keeper.stop_job(settings, cancel=False)


def cmd_cancel(settings: Settings, _: argparse.Namespace) -> None:
    keeper.stop_job(settings, cancel=True)


def cmd_datagen(settings: Settings, args: argparse.Namespace) -> None:
    stack.start_datagen(settings, args.extra)
    print(f"generator running in the background (log: {supervision.log_file(settings, 'datagen')})")


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    cmd_up(settings, args)
    cmd_job(settings, args)  # before the generator: a restore is only safe on empty topics
    cmd_datagen(settings, args)
    print(
        "\nThe pipeline is running.\n"
        f"  Flink web UI:   {settings.flink_rest_url}  (Jobs > Running Jobs > {settings.job_name})\n"
        f"  Prometheus:     http://127.0.0.1:{settings.prometheus_port}  (if installed)\n"
        f"  Flink metrics:  http://127.0.0.1:{settings.flink_metrics_ports.split('-')[0]}/metrics\n"
        f"  Postgres:       postgresql://{settings.postgres_user}@"
        f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_db}"
        "  (password: POSTGRES_PASSWORD; `make psql` needs none)\n"
        "\nWatch results (`make psql`, or any psql):\n"
        f"  {watch_query(settings)}\n"
        "\n`make status` shows progress; `make down` stops everything."
    )


def cmd_status(settings: Settings, _: argparse.Namespace) -> None:
    services_now = stack.status(settings)
    if not services_now:
        print("  no stack running (supervisord is not up): `make up`")
    for name, state, pid, restarts in services_now:
        shown = f"{state} (pid {pid})" if pid else state
        print(f"  {name:<12} {shown:<22} restarted {restarts}x after dying")
    intent = keeper.read_intent(settings)
    if intent is not None:
        print(f"  keeper: job should be {intent.state}{' (' + intent.note + ')' if intent.note else ''}")
        last = keeper.read_status(settings)
        if last.get("last_action"):
            print(f"          last action: {last['last_action']}")
    found: list[str] = []
    if stack.flink_overview(settings) is not None:
        for status in job.active_jobs(settings):
            print(f"  job {status.name}: {status.state} ({status.job_id})")
            lag = keeper_lag(settings, status.job_id, intent)
            found += print_job_figures(settings, status.job_id, status.state, lag)
    try:
        import psycopg2

        with psycopg2.connect(settings.psycopg_dsn(), connect_timeout=2) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*), count(click_id), count(user_name) FROM {settings.sink_table}")
            rows, attributed, named = cur.fetchall()[0]
            dead = health.dead_letters(settings, conn)
            # The models of the job `make job` started, which may not be those of this shell.
            models = model_comparison(with_job_models(settings, intent), conn)
        print(f"  {settings.sink_table}: {rows} rows, {attributed} attributed, {named} with user_name")
        for row in models:
            print(f"  {model_line(*row)}")
        print(
            f"  {settings.dead_letter_table}: {dead.total} rows, {dead.last_minute} in the last minute "
            f"({dead.per_minute_before:.1f}/min in the ten before)"
        )
        found += health.problems(settings, "", None, None, (), dead)
    except Exception as error:  # status is best effort: a stopped database is a normal answer
        print(f"  postgres: not reachable ({type(error).__name__})")
    if intent is not None and intent.state == keeper.FAILED:
        found.append(f"the keeper gave up on the job: {intent.note}")
    if intent is not None and intent.unwritten:
        found.append(f"a drain failed: {intent.unwritten}")
    print("  problems: none" if not found else "  PROBLEMS (need a human):")
    for problem in found:
        print(f"  ! {problem}")


def keeper_lag(settings: Settings, job_id: str, intent: keeper.Intent | None) -> list[tuple[float, float]]:
    """The keeper's recent lag samples of this job (growth needs a history), else none."""
    if intent is None or intent.job_id != job_id:
        return []
    return [(t, v) for t, v in keeper.read_status(settings).get("lag", [])]


def with_job_models(settings: Settings, intent: keeper.Intent | None) -> Settings:
    """The settings with ATTRIBUTION_MODELS as the keeper's job was started with."""
    models = intent.env.get("ATTRIBUTION_MODELS") if intent is not None else None
    return dataclasses.replace(settings, attribution_models=models) if models else settings


def model_comparison(settings: Settings, conn: Any) -> list[tuple]:
    """The enabled models' rows of the comparison view, in ATTRIBUTION_MODELS order; none when the
    schema predates the view (`make up` creates it)."""
    import psycopg2

    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '5s'")  # it scans the result tables
            cur.execute(
                "SELECT model, checkouts, attributed_checkouts, attributed_share, attributed_revenue,"
                " avg_minutes_click_to_checkout, clicks_credited_per_checkout"
                f" FROM {settings.model_comparison_view}"
                " WHERE model = ANY(%s)",
                (list(settings.models),),
            )
            rows = {row[0]: row for row in cur.fetchall()}
    except psycopg2.Error:
        conn.rollback()
        return []
    return [rows[model] for model in settings.models if model in rows]


def model_line(
    model: str,
    checkouts: int | None,
    attributed: int | None,
    share: Decimal | None,
    revenue: Decimal | None,
    minutes: Decimal | None,
    clicks_credited: Decimal | None = None,
) -> str:
    """One model's figures, e.g. "last_click: 62.0% of 1,234 checkouts attributed, revenue 12,345.67,
    click 31.2 min before checkout" (a touches model: every touch, on average)."""
    touches = MODELS[model].shape == "touches"
    if checkouts:
        shown = f"{model}: {100 * (share or 0):.1f}% of {checkouts:,} checkouts attributed"
    elif attributed:
        # Touches alone: no row for an unattributed checkout, so no denominator.
        one_click = " or ".join(m.name for m in MODELS.values() if m.shape == "one_click")
        shown = f"{model}: {attributed:,} checkouts attributed (a share needs {one_click})"
    else:
        return f"{model}: no checkouts yet"
    shown += f", revenue {revenue or 0:,.2f}"
    if minutes is not None:
        # The mean over attributed checkouts; a touches model's over every touch.
        shown += f", {'touches' if touches else 'click'} {minutes:.1f} min before checkout"
    if touches and clicks_credited is not None:
        shown += f", {clicks_credited:.2f} clicks share each"
    return shown


def print_job_figures(
    settings: Settings,
    job_id: str,
    state: str,
    lag_samples: list[tuple[float, float]],
    sample_seconds: float = 2.0,
) -> list[str]:
    """Business figures from the job's counters (two readings for rates), restarts, lag and
    checkpoints; returns the problems found (attribution/health.py)."""
    import time

    from attribution import metrics

    first = metrics.business_counts(metrics.scrape(settings), job_id)
    time.sleep(sample_seconds)
    samples = metrics.scrape(settings)
    now = metrics.business_counts(samples, job_id)

    def total(counts: dict, metric: str) -> float:
        return sum(counts.get(metric, {}).values())

    checkouts, unattributed = total(now, "checkouts"), total(now, "checkouts_unattributed")
    rate = (checkouts - total(first, "checkouts")) / sample_seconds
    unknown = now.get("checkouts", {}).get("unknown", 0)
    print(f"    checkouts: {checkouts:.0f} ({rate:.0f}/s), unknown user {unknown:.0f}")
    if checkouts:
        # A checkout counts as unattributed once event time has passed it with no click.
        attributed = checkouts - unattributed
        print(
            f"    attributed: {attributed:.0f} ({100 * attributed / checkouts:.1f} %),"
            f" unattributed {unattributed:.0f}"
        )
    latency = metrics.latency_quantiles(samples, job_id)
    if latency:
        shown = ", ".join(
            f"p{float(q) * 100:g} {v / 1000:.2f} s"
            for q, v in sorted(latency.items(), key=lambda i: float(i[0]))
        )
        print(f"    end-to-end latency (datetime_occured to sink, last 10,000 rows): {shown}")
    late = now.get("late_events", {})
    print(f"    late events: {', '.join(f'{k} {v:.0f}' for k, v in sorted(late.items())) or 'none'}")
    malformed = now.get("malformed_records", {})
    print(f"    malformed: {', '.join(f'{k} {v:.0f}' for k, v in sorted(malformed.items())) or 'none'}")

    details = job.rest_get(settings, f"/jobs/{job_id}")
    # Subtasks that have seen no watermark yet report Long.MIN_VALUE: left out.
    watermarks = [
        float(w["value"])
        for vertex in details["vertices"]
        if vertex["name"].startswith("IntervalJoin")
        for w in job.rest_get(settings, f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks")
    ]
    watermarks = [w for w in watermarks if w > 0]
    if watermarks:
        print(
            f"    event-time lag (now - watermark into the join):"
            f" {time.time() - min(watermarks) / 1000:.1f} s"
        )
    restarts = health.restarts(settings, job_id)
    cause = ""
    if restarts.last_cause:
        cause = f"; last cause ({restarts.last_ago:.0f} s ago): {restarts.last_cause}"
    print(
        f"    restarts: {restarts.recent} in the last {health.WINDOW_SECONDS // 60} min, "
        f"{restarts.total} in all{cause}"
    )
    lag = metrics.pending_records(samples, job_id)
    if lag is not None:
        lag_samples = [*lag_samples, (time.time(), lag)]
        print(f"    consumer lag: {lag:,.0f} records")
    checkpoints = health.checkpoints(settings, job_id)
    latest = checkpoints.latest_completed
    if latest:
        print(
            f"    last checkpoint: #{latest['id']} {checkpoints.completed_ago:.0f} s ago, "
            f"{latest['state_size'] / 2**20:.1f} MiB, {latest['end_to_end_duration']} ms; "
            f"failed {checkpoints.failed_total} ({checkpoints.failed_recent} in the last "
            f"{health.WINDOW_SECONDS // 60} min)"
        )
    return health.problems(settings, state, restarts, checkpoints, lag_samples)


def cmd_psql(settings: Settings, args: argparse.Namespace) -> None:
    psql = str(services.postgres_bin() / "psql")
    # Queries on the results as the reader role; --admin as POSTGRES_USER (the schema's owner).
    settings = settings if args.admin else settings.as_role("reader")
    os.environ["PGPASSWORD"] = settings.postgres_password
    os.execv(
        psql,
        [
            psql,
            "-h",
            settings.postgres_host,
            "-p",
            str(settings.postgres_port),
            "-U",
            settings.postgres_user,
            "-d",
            settings.postgres_db,
        ],
    )


def cmd_init(settings: Settings, _: argparse.Namespace) -> None:
    provision.apply_schema(settings)
    provision.create_topics(settings)
    print("schema and topics ready")


def cmd_flink(settings: Settings, args: argparse.Namespace) -> None:
    services.exec_flink_process(settings, args.process)


def open_url(url: str, what: str) -> None:
    """Opens a browser where there is one (not over SSH); prints the URL either way."""
    print(f"{what}: {url}")
    if os.environ.get("SSH_CONNECTION") or not webbrowser.open(url):
        print("(no browser here: open the URL above in yours)")


def cmd_ui(settings: Settings, _: argparse.Namespace) -> None:
    url = settings.flink_rest_url
    try:
        running = job.active_jobs(settings, settings.job_name)
    except requests.RequestException:
        raise StackError(f"no Flink cluster at {url}: `make up` (or `make run`) first") from None
    open_url(f"{url}/#/job/running/{running[0].job_id}/overview" if running else url, "Flink web UI")


def cmd_viz(settings: Settings, _: argparse.Namespace) -> None:
    grafana = f"http://127.0.0.1:{settings.grafana_port}"
    try:
        requests.get(f"{grafana}/api/health", timeout=2).raise_for_status()
        open_url(f"{grafana}/d/checkout-attribution", "Grafana (Compose stack)")
        return
    except requests.RequestException:
        pass
    print(
        "Grafana runs in the Compose stack only (no package for it on PyPI or Debian); the embedded "
        "stack's dashboards are Prometheus graphs."
    )
    open_url(
        f"http://127.0.0.1:{settings.prometheus_port}/graph?g0.expr="
        "rate(flink_taskmanager_job_task_operator_attribution_user_checkouts%5B1m%5D)",
        "Prometheus",
    )


def cmd_sql_client(settings: Settings, args: argparse.Namespace) -> None:
    from attribution.deps import client_env

    if stack.flink_overview(settings) is None:
        raise StackError(f"no Flink cluster at {settings.flink_rest_url}: `make up` (or `make run`) first")
    argv = [sys.executable, "-m", "attribution.pipeline", "--sql-shell"]
    if args.file:
        argv += ["--sql-file", str(Path(args.file).resolve())]
    else:
        print(f"SQL on {settings.flink_rest_url}: clicks, checkouts, rejected, users, the rule's steps")
        print("(checkouts_enriched, click_candidates, and those of ATTRIBUTION_MODELS, e.g. first_click),")
        print("read-only result tables and dead_letters. `make sql` shows how they are defined;")
        print("starting (about 20 s) ...")
    os.execve(sys.executable, argv, {**os.environ, **settings.to_env(), **client_env(settings)})


def cmd_replay_dead_letters(settings: Settings, args: argparse.Namespace) -> None:
    from attribution import replay

    if not (args.reason or args.since or args.until or args.all):
        raise StackError("name what to replay: --reason R (repeatable), --since/--until TIME, or --all")
    selection = replay.Selection(tuple(args.reason or ()), args.since, args.until)
    outcome = replay.replay(settings, selection, dry_run=args.dry_run)
    verb = "would send" if args.dry_run else "sent"
    print(f"{verb} {outcome.sent} dead letter(s) back to their topics", end="")
    print(
        f"; {outcome.not_replayable} not replayable (stored cut or empty)" if outcome.not_replayable else ""
    )


def iso_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None


def cmd_keeper(settings: Settings, args: argparse.Namespace) -> None:
    keeper.keep(settings, start=args.start)


COMMANDS = {
    "up": (cmd_up, "start broker, Postgres, Flink (and Prometheus if installed); create schema and topics"),
    "job": (cmd_job, "submit the job unless it already runs; return once it is RUNNING"),
    "stop-job": (cmd_stop_job, "stop the job with a savepoint that the next `job` resumes from"),
    "cancel": (cmd_cancel, "cancel the running job (its last checkpoint is kept)"),
    "datagen": (cmd_datagen, "start the generator in the background; arguments after -- go to it"),
    "run": (cmd_run, "up, then the job (before any event: a restore is only safe then), then the generator"),
    "status": (
        cmd_status,
        "services (state, restarts), the job, business figures, row counts, the attribution models",
    ),
    "down": (cmd_down, "stop everything the stack started"),
    "psql": (cmd_psql, "open psql (bundled with the embedded Postgres) on the pipeline's database"),
    "init": (cmd_init, "create the schema and the topics on the configured Postgres and Kafka (Compose)"),
    "flink": (cmd_flink, "run a JobManager or TaskManager in the foreground (the containers' entry point)"),
    "sql-client": (cmd_sql_client, "a SQL client on the running cluster with the job's tables declared"),
    "ui": (cmd_ui, "open the Flink web UI on the job (prints the URL without a browser)"),
    "viz": (cmd_viz, "open Grafana (Compose) or else Prometheus (prints the URL without a browser)"),
    "replay-dead-letters": (
        cmd_replay_dead_letters,
        "send chosen dead letters back to their topics, once each (after the producer is fixed)",
    ),
    "keeper": (
        cmd_keeper,
        "keep the job running: resubmit it when a JobManager restart lost it (supervised)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    parser = argparse.ArgumentParser(
        prog="python -m attribution",
        description="Embedded (no Docker) checkout-attribution stack on 127.0.0.1.",
        epilog=describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name in {"datagen", "run"}:
            command.add_argument("extra", nargs=argparse.REMAINDER, help="generator arguments after --")
        if name == "flink":
            command.add_argument("process", choices=["jobmanager", "taskmanager"])
        if name == "sql-client":
            command.add_argument("--file", help="run this SQL file and exit (non-interactive)")
        if name == "keeper":
            command.add_argument(
                "--start", action="store_true", help="submit the job first if it was never started (Compose)"
            )
        if name == "psql":
            command.add_argument("--admin", action="store_true", help="as POSTGRES_USER, not the reader role")
        if name == "replay-dead-letters":
            command.add_argument("--reason", action="append", help="only this reason (repeatable)")
            command.add_argument("--since", type=iso_time, help="only records stamped (Kafka) at or after")
            command.add_argument("--until", type=iso_time, help="only records stamped (Kafka) before")
            command.add_argument("--all", action="store_true", help="every dead letter not replayed yet")
            command.add_argument("--dry-run", action="store_true", help="count, send nothing")
        if name in {"job", "run"}:
            command.add_argument("--savepoint", help="restore from this savepoint / retained checkpoint")
            command.add_argument(
                "--fresh", action="store_true", help="ignore retained checkpoints and savepoints"
            )
    args = parser.parse_args(argv)
    if getattr(args, "extra", None) and args.extra[0] == "--":
        args.extra = args.extra[1:]
    try:
        settings = Settings.from_env()
        COMMANDS[args.command][0](settings, args)
    except (ConfigError, StackError, SupervisionError, AccountError, job.JobError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
