"""What needs a human: a job restarting over and over, failing checkpoints, growing consumer lag,
a rising dead-letter rate. `make status` prints it; the keeper logs it and keeps the lag samples
that tell a lag that grows from a burst being worked off. The same conditions are Prometheus
alerting rules in Compose (prometheus/alerts.yml).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from attribution import job, metrics
from attribution.config import Settings

WINDOW_SECONDS = 300  # "the last minutes" of every figure below
# Restarts in the window that make a loop: one is a crash that Flink healed.
RESTART_LOOP = 2
# Failed checkpoints in the window: the first trigger of a new job may fail before its tasks run.
FAILED_CHECKPOINTS = 2
LAG_RECORDS = 1000  # lag that is a problem when it is also higher than LAG_TREND_SECONDS ago
LAG_TREND_SECONDS = 60
# Dead letters in the last minute that are a problem when they are also more than twice the
# rate of the ten minutes before.
DEAD_LETTERS_PER_MINUTE = 10


@dataclass(frozen=True)
class Restarts:
    recent: int  # within WINDOW_SECONDS
    total: int
    last_cause: str | None
    last_ago: float | None  # seconds


@dataclass(frozen=True)
class Checkpoints:
    failed_recent: int
    failed_total: int
    last_failure: str | None
    completed_ago: float | None  # seconds since the newest completed one
    running_for: float  # seconds since the job started
    latest_completed: dict | None = None  # the REST API's statistics of the newest completed one


@dataclass(frozen=True)
class DeadLetters:
    last_minute: int
    per_minute_before: float  # over the ten minutes before the last one
    total: int


def restarts(settings: Settings, job_id: str, now: float | None = None) -> Restarts:
    now = time.time() if now is None else now
    history = job.exception_history(settings, job_id)
    times = [entry.get("timestamp", 0) / 1000 for entry in history]
    try:
        reported = job.rest_get(settings, f"/jobs/{job_id}/metrics?get=numRestarts")
        total = int(float(reported[0]["value"])) if reported else len(history)
    except (LookupError, ValueError):
        total = len(history)
    last = history[0] if history else None
    return Restarts(
        recent=sum(1 for t in times if now - t <= WINDOW_SECONDS),
        total=max(total, len(history)),
        last_cause=job.root_cause(last.get("stacktrace", ""))[:300] if last else None,
        last_ago=now - times[0] if times else None,
    )


def checkpoints(settings: Settings, job_id: str, now: float | None = None) -> Checkpoints:
    now = time.time() if now is None else now
    stats = job.rest_get(settings, f"/jobs/{job_id}/checkpoints")
    failed = [entry for entry in stats.get("history", []) if entry.get("status") == "FAILED"]
    latest = stats.get("latest") or {}
    completed = latest.get("completed")
    last_failed = latest.get("failed")
    started = job.rest_get(settings, f"/jobs/{job_id}").get("start-time", now * 1000) / 1000
    return Checkpoints(
        failed_recent=sum(1 for e in failed if now - e.get("failure_timestamp", 0) / 1000 <= WINDOW_SECONDS),
        failed_total=stats.get("counts", {}).get("failed", 0),
        last_failure=(last_failed.get("failure_message") or "?") if last_failed else None,
        completed_ago=now - completed["latest_ack_timestamp"] / 1000 if completed else None,
        running_for=now - started,
        latest_completed=completed,
    )


def consumer_lag(settings: Settings, job_id: str) -> float | None:
    """Records the job's Kafka sources have yet to read, over every partition; None before the
    sources have fetched (the metric appears with the first fetch)."""
    return metrics.pending_records(metrics.scrape(settings), job_id)


def dead_letters(settings: Settings, conn) -> DeadLetters:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE written_at > now() - interval '1 minute'),"
            " count(*) FILTER (WHERE written_at <= now() - interval '1 minute'"
            "                  AND written_at > now() - interval '11 minutes'),"
            f" count(*) FROM {settings.dead_letter_table}"
        )
        last_minute, before, total = cur.fetchone()
    return DeadLetters(last_minute, before / 10, total)


def lag_growing(samples: Sequence[tuple[float, float]], now: float | None = None) -> bool:
    """Whether the newest of (time, lag) samples is above LAG_RECORDS and higher than every
    sample taken LAG_TREND_SECONDS or more before it (so a burst being worked off is not)."""
    if not samples:
        return False
    newest_at, newest = samples[-1]
    older = [lag for at, lag in samples if newest_at - at >= LAG_TREND_SECONDS]
    return newest > LAG_RECORDS and bool(older) and newest > max(older)


def problems(
    settings: Settings,
    state: str,
    restart: Restarts | None,
    checkpoint: Checkpoints | None,
    lag_samples: Sequence[tuple[float, float]] = (),
    dead: DeadLetters | None = None,
) -> list[str]:
    """One line per condition that needs a human, empty when there is none."""
    found = []
    if state in {"RESTARTING", "FAILING", "FAILED"} or (restart and restart.recent >= RESTART_LOOP):
        cause = f"; last cause: {restart.last_cause}" if restart and restart.last_cause else ""
        recent = restart.recent if restart else 0
        found.append(
            f"restart loop: job {state}, restarted {recent}x in the last {WINDOW_SECONDS // 60} min{cause}"
        )
    if checkpoint is not None:
        stale_after = 3 * settings.checkpoint_interval_seconds + 30
        stale = (
            checkpoint.running_for > stale_after
            and (checkpoint.completed_ago is None or checkpoint.completed_ago > stale_after)
            and state == "RUNNING"
        )
        if checkpoint.failed_recent >= FAILED_CHECKPOINTS or stale:
            last = "none yet" if checkpoint.completed_ago is None else f"{checkpoint.completed_ago:.0f} s ago"
            found.append(
                f"checkpoints failing: {checkpoint.failed_recent} failed in the last "
                f"{WINDOW_SECONDS // 60} min, last completed {last}; last failure: {checkpoint.last_failure}"
            )
    if lag_growing(lag_samples):
        found.append(
            f"consumer lag growing: {lag_samples[-1][1]:,.0f} records behind, more than "
            f"{LAG_TREND_SECONDS} s ago (the job does not keep up, or is stuck)"
        )
    if dead is not None and dead.last_minute > max(DEAD_LETTERS_PER_MINUTE, 2 * dead.per_minute_before):
        found.append(
            f"dead letters rising: {dead.last_minute} in the last minute, {dead.per_minute_before:.1f}/min "
            f"before (see {settings.dead_letter_table} by reason; `make replay-dead-letters` once fixed)"
        )
    return found
