"""Command line of the embedded stack: `python -m attribution {up,job,datagen,run,status,down,...}`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import webbrowser
from datetime import datetime
from pathlib import Path

import requests

from attribution import job, keeper, logs, provision, services, stack, supervision
from attribution.account import AccountError
from attribution.config import ConfigError, Settings, describe
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


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    from attribution import status

    document = status.report(settings)
    if args.json:
        print(json.dumps(document, indent=2, default=status.as_json))
    else:
        print("\n".join(status.text(document)))


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
    argv = [sys.executable, "-m", "attribution.prompt"]
    if args.file:
        argv += ["--file", str(Path(args.file).resolve())]
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


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> None:
    from attribution import backfill

    if stack.flink_overview(settings) is None:
        raise StackError(f"no Flink cluster at {settings.flink_rest_url}: `make up` (or `make run`) first")
    job_id = backfill.backfill(settings, args.since, args.until)
    print(f"backfill {job_id} finished: the period's rows are written again")


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
    "backfill": (
        cmd_backfill,
        "recompute the checkouts of a period into the same tables, beside the running job (--since)",
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
        if name == "status":
            command.add_argument("--json", action="store_true", help="one JSON document (docs/operations.md)")
        if name == "backfill":
            command.add_argument(
                "--since",
                type=iso_time,
                required=True,
                help="first Kafka timestamp of the period (ISO-8601, UTC)",
            )
            command.add_argument(
                "--until", type=iso_time, help="end of the period (default: the topics' end)"
            )
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
