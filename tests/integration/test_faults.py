"""Faults while events keep flowing. After each, the table must equal the reference exactly: no
missing checkout, no duplicate row, no attribution that differs from the rule.

Each test sends the first half of a generated workload, waits for a checkpoint that covers some
output, injects the fault, sends the second half, lets event time pass everything, and compares.
"""

from __future__ import annotations

import random
import signal
import time
from datetime import datetime, timedelta

import pytest

from attribution import job, stack
from attribution.config import Settings
from tests.integration.harness import (
    PipelineRun,
    Workload,
    diff,
    pipeline,
    poll,
    row_count,
    wait_for_rows,
    workload,
)
from tests.reference import Attribution, attribute

pytestmark = pytest.mark.integration
MARKER_USER = 999_999_998


def first_half_checkpointed(run: PipelineRun, load: Workload, rng: random.Random) -> list[tuple[str, dict]]:
    half = len(load.events) // 2
    run.send_all(load.events[:half], rng)
    poll(lambda: row_count(run.settings, list(load.expected)) > 50, 90, "rows from the first half")
    run.wait_for_new_checkpoint()
    return load.events[half:]


def assert_exact(run: PipelineRun, load: Workload) -> None:
    run.flush_through(load.last_event_time + timedelta(minutes=1), MARKER_USER)
    actual = wait_for_rows(run.settings, load.expected)
    assert actual == load.expected, diff(load.expected, actual)
    assert row_count(run.settings, list(load.expected)) == len(load.expected)


def restarted(settings: Settings, job_id: str) -> bool:
    history = job.exception_history(settings, job_id)
    return job.job_status(settings, job_id).fully_running and bool(history)


def test_taskmanager_killed_mid_stream(settings: Settings) -> None:
    load = workload(settings, seed=11, count=3000, user_offset=3_000_000, start=datetime(2024, 6, 1, 9))
    rng = random.Random(5)
    with pipeline(settings, "tm-kill") as run:
        rest = first_half_checkpointed(run, load, rng)
        stack.stop(settings, "taskmanager", signal.SIGKILL, timeout=0)
        killed_at = time.monotonic()
        run.send_all(rest, rng)
        stack.restart_taskmanager(settings)
        poll(lambda: restarted(settings, run.job_id), 180, "the job to restart from its checkpoint")
        recovery = time.monotonic() - killed_at
        assert_exact(run, load)
    print(f"\nTaskManager SIGKILL: RUNNING again after {recovery:.1f}s; {len(load.expected)} checkouts exact")


def test_jobmanager_restarted_and_job_resumed_from_checkpoint(settings: Settings) -> None:
    load = workload(settings, seed=12, count=3000, user_offset=4_000_000, start=datetime(2024, 6, 2, 9))
    rng = random.Random(6)
    with pipeline(settings, "jm-restart") as run:
        rest = first_half_checkpointed(run, load, rng)
        old_job = run.job_id
        stack.stop(settings, "jobmanager", signal.SIGKILL, timeout=0)
        killed_at = time.monotonic()
        run.send_all(rest, rng)
        jobmanager, _ = stack.flink_services(settings)
        stack.start(settings, jobmanager)
        # No HA in a standalone session cluster: the job is resubmitted from its retained checkpoint.
        point = job.latest_restore_point(settings, old_job)
        assert point is not None, "no retained checkpoint"
        poll(lambda: (stack.flink_overview(settings) or {}).get("slots-available", 0) >= 2, 120, "free slots")
        run.resubmit(point.path)
        recovery = time.monotonic() - killed_at
        assert_exact(run, load)
    print(f"\nJobManager SIGKILL: resumed from {point.path} after {recovery:.1f}s; exact")


def test_postgres_down_for_30_seconds(settings: Settings) -> None:
    load = workload(settings, seed=13, count=3000, user_offset=5_000_000, start=datetime(2024, 6, 3, 9))
    rng = random.Random(7)
    with pipeline(settings, "pg-down") as run:
        rest = first_half_checkpointed(run, load, rng)
        stack.stop(settings, "postgres", signal.SIGINT)
        down_at = time.monotonic()
        run.send_all(rest, rng)
        states = set()
        while time.monotonic() - down_at < 30:  # the outage itself, not a synchronisation wait
            states.add(job.job_status(settings, run.job_id).state)
            time.sleep(1)
        stack.start(settings, stack.postgres_service(settings))
        assert "FAILED" not in states, states
        poll(lambda: job.job_status(settings, run.job_id).fully_running, 180, "the job running again")
        assert_exact(run, load)
        assert job.job_status(settings, run.job_id).state == "RUNNING"
    print(f"\nPostgres down 30s: job states seen {sorted(states)}; exact afterwards")


def test_broker_restart_drains_the_job_and_a_fresh_start_loses_nothing_consumed(settings: Settings) -> None:
    """The embedded broker keeps topics in memory, so a restart empties them. `make up` drains the
    job that ran against the old broker (results waiting for event time are written), and the next
    `make job` starts without the old state, reading the new topics from their beginning. Every
    checkout consumed before and sent after the restart is written; clicks from before the restart
    no longer attribute checkouts after it (they are gone with the old broker's state)."""
    load = workload(settings, seed=14, count=3000, user_offset=6_000_000, start=datetime(2024, 6, 4, 9))
    rng = random.Random(8)
    half = len(load.events) // 2
    before, after = load.events[:half], load.events[half:]
    with pipeline(settings, "broker-restart") as run:
        run.send_all(before, rng)
        run.flush_through(max_time(before), MARKER_USER)  # all of it consumed before the broker goes
        old_job = run.job_id
        stack.stop(settings, "broker")
        stack.up(settings)  # what `make up` does: a new, empty broker
        assert job.job_status(settings, old_job).state in {"FINISHED", "CANCELED"}
        stack.create_topics(settings, [run.clicks, run.checkouts])
        assert (
            job.safe_restore_point(run.settings, None, stack.broker_started_at(settings)) is None
        )  # old offsets are not resumed
        run.resubmit(None)
        run.send_all(after, rng)
        run.flush_through(load.last_event_time + timedelta(minutes=1), MARKER_USER)

        expected = {**reference_of(before, load.users), **reference_of(after, load.users)}
        actual = wait_for_rows(settings, expected)
        assert actual == expected, diff(expected, actual)


def test_stop_with_savepoint_and_resume_is_exact(settings: Settings) -> None:
    """`make stop-job` then `make job` on the same broker: state and offsets resume exactly, with
    events produced while the job was stopped."""
    load = workload(settings, seed=15, count=3000, user_offset=7_000_000, start=datetime(2024, 6, 5, 9))
    rng = random.Random(9)
    with pipeline(settings, "savepoint") as run:
        rest = first_half_checkpointed(run, load, rng)
        location = job.stop_with_savepoint(settings, run.job_id)
        run.send_all(rest, rng)
        point = job.safe_restore_point(run.settings, None, stack.broker_started_at(settings))
        assert point is not None and point.rstrip("/") == location.removeprefix("file:").rstrip("/")
        run.resubmit(point)
        assert_exact(run, load)


def reference_of(events: list[tuple[str, dict]], users: dict[int, str]) -> dict[str, Attribution]:
    return attribute(
        [e for t, e in events if t == "clicks"], [e for t, e in events if t == "checkouts"], users
    )


def max_time(events: list[tuple[str, dict]]) -> datetime:
    return max(datetime.strptime(e["datetime_occured"], "%Y-%m-%d %H:%M:%S.%f") for _, e in events)
