"""Recomputing a period into the same tables: a bounded job of its own that reads the topics from
a Kafka timestamp to another and writes what the job would have written. The writes are upserts
that the tables' triggers keep idempotent, so a backfill corrects rows without duplicating them,
and the running job goes on beside it (docs/operations.md, "Backfill").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta

import requests

from attribution import job
from attribution.config import Settings

log = logging.getLogger(__name__)


def backfill_settings(settings: Settings, since: datetime, until: datetime | None) -> Settings:
    """The settings of the job that recomputes the checkouts stamped from `since` to `until` (to the
    end of the topics without it). It starts one attribution window and the out-of-orderness bound
    earlier, so the period's first checkouts see every click that qualifies, and ends the bound
    later, so clicks delivered late are read; checkouts outside the period are written again
    with what it read, which the triggers never let make a row worse."""
    since, until = _utc(since), _utc(until) if until else None
    bound = timedelta(seconds=settings.out_of_orderness_seconds)
    start = since - timedelta(seconds=settings.attribution_window_seconds) - bound
    name = f"{settings.job_name}-backfill-{since:%Y%m%dT%H%M%S}"
    return dataclasses.replace(
        settings,
        job_name=name,
        consumer_group_id=name,
        scan_startup_mode="timestamp",
        scan_startup_timestamp=start.isoformat(),
        scan_bounded_mode="timestamp" if until else "latest-offset",
        scan_bounded_timestamp=(until + bound).isoformat() if until else "",
    )


def backfill(settings: Settings, since: datetime, until: datetime | None, timeout: float = 3600) -> str:
    """Runs the backfill job to its end; returns its id. Logs its progress every 10 s."""
    run = backfill_settings(settings, since, until)
    log.info(
        "backfill %s: reading Kafka records stamped %s to %s",
        run.job_name,
        run.scan_startup_timestamp,
        run.scan_bounded_timestamp or "the end of the topics",
    )
    job_id = job.submit(run)
    deadline = time.monotonic() + timeout
    reported = 0.0
    while True:
        status = job.job_status(run, job_id)
        if status.state == "FINISHED":
            log.info("backfill %s finished: every checkout of the period written again", job_id)
            return job_id
        if status.state in {"FAILED", "CANCELED"}:
            raise job.JobError(f"backfill {job_id} is {status.state}: {job.root_exception(run, job_id)}")
        if time.monotonic() > deadline:
            raise job.JobError(f"backfill {job_id} not finished after {timeout:.0f}s (it goes on running)")
        if time.monotonic() - reported >= 10:
            reported = time.monotonic()
            log.info("backfill %s %s: %s", job_id, status.state, _records_read(run, job_id))
        time.sleep(1)


def _records_read(settings: Settings, job_id: str) -> str:
    try:
        read = sum(
            job.vertex_metric(settings, job_id, f"{topic}_raw", "write-records")
            for topic in ("clicks", "checkouts")
        )
    except (requests.RequestException, LookupError, ValueError):
        return "no figures yet"  # between answers of the REST API: the next report has them
    return f"{read:,.0f} records through the sources"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
