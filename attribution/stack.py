"""The embedded stack as a whole: `up`, `down` and `status`.

Every service runs under supervisord (attribution/supervision.py), which restarts it when it
dies; what each service is lives in attribution/services.py. `up` is idempotent (a running
service is left alone) and `down` stops everything and checks the ports are free.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from attribution import job, keeper, provision, services, supervision
from attribution.account import hand_over, make_private, require_runnable
from attribution.config import Settings, schema_of
from attribution.services import StackError, flink_overview, port_open

__all__ = ["StackError", "down", "flink_jars_stale", "flink_overview", "status", "up"]


log = logging.getLogger(__name__)


def up(settings: Settings) -> None:
    from attribution.deps import ensure_connector_jars, ensure_udf_jar

    make_private(settings.stack_path)
    require_runnable(sys.executable)
    ensure_connector_jars()
    ensure_udf_jar()
    programs = services.programs(settings)
    if not supervision.daemon_running(settings):
        busy = [p.port for p in programs if p.port is not None and port_open(p.port)]
        if busy:
            raise StackError(
                f"port(s) {busy} in use by processes this stack did not start; stop them or set other "
                "ports (see `python -m attribution --help`)"
            )
    services.prepare_postgres(settings)
    hand_over(settings.stack_path)  # what earlier runs as root left (a stack from before this rule)
    supervision.start_daemon(settings, programs)
    by_name = {p.name: p for p in programs}
    supervision.ensure_running(settings, by_name["postgres"])
    provision.apply_schema(settings)
    log.info(f"schema {schema_of(settings.sink_table)} ready")
    supervision.ensure_running(settings, by_name["broker"])
    provision.create_topics(settings)
    log.info(f"topics {settings.clicks_topic}, {settings.checkouts_topic} ready")
    if flink_jars_stale(settings):
        # The cluster loaded the job's jars when it started (FLINK_LIB_DIR): a rebuilt UDF jar
        # takes effect only after a restart. A running job is stopped with a savepoint first.
        log.info("the UDF jar changed since Flink started: restarting Flink to load it")
        drain_jobs(settings)
        for name in ("taskmanager", "jobmanager"):
            supervision.stop(settings, name)
    for name in ("jobmanager", "taskmanager", "prometheus", "keeper"):
        if name in by_name:
            supervision.ensure_running(settings, by_name[name])
    if "prometheus" not in by_name:
        log.info(
            "prometheus not installed: skipped (Debian: apt-get install prometheus; or use the "
            f"Compose stack). Flink's metrics are still served on ports {settings.flink_metrics_ports}."
        )


def start_datagen(settings: Settings, args: list[str]) -> None:
    """(Re)starts the generator with these arguments, supervised like the other services."""
    supervision.stop(settings, "datagen")
    services.set_datagen_args(settings, args)
    supervision.write_config(settings, services.programs(settings))
    supervision.apply_config(settings)
    supervision.ensure_running(settings, services.datagen(settings))


def flink_jars_stale(settings: Settings) -> bool:
    """Whether the running JobManager started before the UDF jar was last built."""
    from attribution.deps import udf_jar

    started = supervision.started_at(settings, "jobmanager")
    jar = udf_jar()
    return started is not None and jar.is_file() and jar.stat().st_mtime > started


def drain_jobs(settings: Settings) -> list[str]:
    """Stops every job with a drain; returns what each drain that failed may leave unwritten,
    also recorded for `make status` when it is the keeper's job."""
    import requests

    try:
        active = job.active_jobs(settings)
    except requests.RequestException:
        return []  # no cluster
    failures = []
    for status in active:
        log.info(f"stopping job {status.name}: draining pending results, then a savepoint")
        unwritten = job.drain_or_cancel(settings, status.job_id)
        intent = keeper.read_intent(settings)
        if unwritten and intent is not None and intent.job_id == status.job_id:
            keeper.write_intent(settings, dataclasses.replace(intent, unwritten=unwritten))
        if unwritten:
            failures.append(unwritten)
    return failures


def down(settings: Settings) -> None:
    if supervision.daemon_running(settings):
        # The keeper first: it would resubmit the job stopped below.
        for name in ("keeper", "datagen"):
            supervision.stop(settings, name)
        intent = keeper.read_intent(settings)
        if intent is not None and intent.state == keeper.RUNNING:
            keeper.write_intent(settings, dataclasses.replace(intent, state=keeper.STOPPED, note="make down"))
        drain_jobs(settings)
        for name in ("taskmanager", "jobmanager", "prometheus", "broker", "postgres"):
            supervision.stop(settings, name)
        supervision.shutdown_daemon(settings)
    busy = [
        p for p in (settings.kafka_port, settings.postgres_port, settings.flink_rest_port) if port_open(p)
    ]
    if busy:
        raise StackError(f"ports still in use after stopping the stack: {busy}")
    log.info("stack stopped")


def status(settings: Settings) -> list[tuple[str, str, int | None, int]]:
    """(service, supervisor state, pid, times it died and was restarted) for every service."""
    restarts = supervision.unexpected_exits(settings)
    return [
        (info["name"], info["statename"], info["pid"] or None, restarts.get(info["name"], 0))
        for info in supervision.all_process_info(settings)
    ]
