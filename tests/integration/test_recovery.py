"""A TaskManager killed mid-stream: the job restores its last checkpoint and the table still equals
the reference exactly (no missing checkout, no duplicate, no wrong attribution)."""

from __future__ import annotations

import random
import signal
import time
from datetime import datetime, timedelta

import pytest

from attribution import job, stack
from attribution.config import Settings
from datagen.gen_fake_data import TrafficShape, simulated_events
from tests.integration.harness import diff, insert_users, pipeline, poll, row_count, wait_for_rows
from tests.reference import attribute

pytestmark = pytest.mark.integration
MARKER_USER = 999_999_998


def completed_checkpoints(settings: Settings, job_id: str) -> int:
    return job._get(settings, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]


def test_taskmanager_killed_mid_stream_recovers_exactly(settings: Settings) -> None:
    shape = TrafficShape(users=30, products=10, jitter_seconds=5.0)
    events = list(
        simulated_events(
            seed=11, count=3000, start=datetime(2024, 6, 1, 9, 0), events_per_second=0.5, shape=shape
        )
    )
    user_offset = 3_000_000
    for _, event in events:
        event["user_id"] += user_offset
        event["checkout_id" if "checkout_id" in event else "click_id"] += "-k"
    users = {user_offset + i: f"crash-user-{i}" for i in range(1, shape.users + 1)}
    insert_users(settings, users)
    expected = attribute(
        [e for t, e in events if t == "clicks"], [e for t, e in events if t == "checkouts"], users
    )
    rng = random.Random(5)
    first, second = events[:1500], events[1500:]

    with pipeline(settings, "crash") as run:
        topic_of = {"clicks": run.clicks, "checkouts": run.checkouts}
        for topic, event in first:
            run.writer.send_async(topic_of[topic], event, rng.randrange(settings.topic_partitions))
        run.writer.producer.flush()
        ids = list(expected)
        poll(lambda: row_count(settings, ids) > 100, 60, "rows from the first half")
        before = completed_checkpoints(settings, run.job_id)
        poll(
            lambda: completed_checkpoints(settings, run.job_id) > before,
            60,
            "a checkpoint after the first half",
        )

        stack.stop(settings, "taskmanager", signal.SIGKILL, timeout=0)
        killed_at = time.monotonic()
        for topic, event in second:  # events keep arriving while the job is down
            run.writer.send_async(topic_of[topic], event, rng.randrange(settings.topic_partitions))
        run.writer.producer.flush()
        stack.restart_taskmanager(settings)
        poll(
            lambda: (
                job.job_status(settings, run.job_id).fully_running
                and job._get(settings, f"/jobs/{run.job_id}/exceptions")["exceptionHistory"]["entries"]
            ),
            180,
            "the job to restart and run again",
        )
        recovery = time.monotonic() - killed_at

        last = max(datetime.strptime(e["datetime_occured"], "%Y-%m-%d %H:%M:%S.%f") for _, e in events)
        run.flush_through(last + timedelta(minutes=1), MARKER_USER)
        actual = wait_for_rows(settings, expected)
        assert actual == expected, diff(expected, actual)
        assert row_count(settings, ids) == len(expected)
    print(
        f"recovery: TaskManager SIGKILL -> job RUNNING again in {recovery:.1f}s; "
        f"{len(expected)} checkouts exact"
    )
