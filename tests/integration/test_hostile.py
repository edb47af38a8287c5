"""Hostile records among ordinary traffic, on the real job, broker and Postgres: wrong clocks on
every partition, on one, and beside an idle one, and ids no key can hold. Each is dead-lettered
with its reason, every other checkout equals the reference, and the job never restarts.
(tests/bad_records.py has one record of every reason; this is the traffic around them.)"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from attribution import job, keeper, stack
from attribution.config import Settings
from tests.bad_records import random_id
from tests.events import checkout, click
from tests.integration.harness import ONE_MODEL_PER_SHAPE, Sent, dead_letters, pipeline, poll, rows, workload
from tests.integration.test_faults import MARKER_USER, assert_exact, cli

pytestmark = pytest.mark.integration


def test_wrong_clocks_and_poison_ids_leave_every_other_checkout_right(settings: Settings) -> None:
    start = datetime(2024, 6, 6, 9)
    load = workload(settings, seed=21, count=3000, user_offset=8_000_000, start=start)
    rng = random.Random(21)
    half = len(load.events) // 2
    with pipeline(settings, "hostile", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        topic_of = {"clicks": run.clicks, "checkouts": run.checkouts}
        partitions = range(settings.topic_partitions)
        rejected: dict[Sent, str] = {}

        def hostile(n: int, partition: int) -> None:
            """A device clock two hours ahead of the Kafka timestamp; a producer host two hours
            ahead, which stamps its Kafka records alike; a 3,000-character random id."""
            ahead = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=2)
            ahead_ms = int((datetime.now(UTC) + timedelta(hours=2)).timestamp() * 1000)
            for topic, event in (
                ("clicks", click(f"clock-{n}-{partition}", 1, "p", ahead)),
                ("checkouts", checkout(f"clock-{n}-{partition}", 1, "p", ahead)),
            ):
                sent = run.writer.send(topic_of[topic], event, partition)
                rejected[sent] = "datetime_occured_in_future"
                sent = run.writer.send(topic_of[topic], event, partition, timestamp_ms=ahead_ms)
                rejected[sent] = "datetime_occured_in_future"
            # Stamped at the workload's start: a rejected record's plausible time still counts
            # for event time, as any record's does (docs/reliability.md).
            poison_click = click(random_id(3000, n), 1, "p", start)
            rejected[run.writer.send(run.clicks, poison_click, partition)] = "click_id_too_long"
            poison_checkout = checkout(random_id(3000, n + 1), 1, "p", start)
            rejected[run.writer.send(run.checkouts, poison_checkout, partition)] = "checkout_id_too_long"

        # Every partition bad, before anything else.
        for partition in partitions:
            hostile(1, partition)
        # The first half on partition 0 alone: the other partitions idle beside the bad ones.
        for topic, event in load.events[:half]:
            run.writer.send_async(topic_of[topic], event, 0)
        run.writer.producer.flush()
        # One bad partition in the middle of the stream, then the rest on every partition.
        hostile(2, 0)
        run.send_all(load.events[half:], rng)

        assert_exact(run, load)
        expected = {(s.topic, s.partition, s.offset): reason for s, reason in rejected.items()}
        poll(lambda: dead_letters(settings, [run.clicks, run.checkouts]).keys() >= expected.keys(), 60,
             "every hostile record dead-lettered")  # fmt: skip
        found = dead_letters(settings, [run.clicks, run.checkouts])
        assert {key: found[key][0] for key in expected} == expected
        run.assert_healthy()  # and never restarted


def test_a_sink_that_fails_every_write_shows_as_a_restart_loop_within_a_minute(settings: Settings) -> None:
    """A constraint added in Postgres by hand fails every write of one checkout: `make status` and
    the keeper both name the loop and its cause within a minute."""
    constraint = "refuse_for_the_restart_loop_test"
    with pipeline(settings, "loop", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            cur.execute(
                f"ALTER TABLE {settings.sink_table} ADD CONSTRAINT {constraint} "
                "CHECK (checkout_id NOT LIKE 'refused-%') NOT VALID"
            )
        conn.close()
        try:
            at = datetime(2024, 6, 7, 9)
            run.writer.send(run.checkouts, checkout(f"refused-{run.job_id}", 1, "p", at), 0)
            run.advance_event_time(at + timedelta(minutes=1), MARKER_USER)  # its row is written now
            status = poll(lambda: loop_in(cli(run.settings, "status")), 60, "make status to show the loop")
            assert "violates check constraint" in status, status
            poll(
                lambda: any("restart loop" in p for p in keeper.read_status(settings).get("problems", [])),
                60,
                "the keeper to record the loop",
            )
        finally:
            with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
                cur.execute(f"ALTER TABLE {settings.sink_table} DROP CONSTRAINT {constraint}")
            conn.close()


def loop_in(status: str) -> str | None:
    """The status's restart-loop line, if it has one."""
    return next((line for line in status.splitlines() if "! restart loop" in line), None)


def test_a_drain_that_fails_says_what_may_be_unwritten(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """`make down` drains the job before stopping it. When the drain's savepoint cannot be
    written, the job is cancelled, and the command and `make status` say which checkouts may
    be unwritten: those event time had not passed yet."""
    savepoints = settings.stack_path / "savepoints"
    moved = savepoints.with_name("savepoints.moved")
    with pipeline(settings, "drain", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        at = datetime(2024, 6, 11, 9)
        run.advance_event_time(at, MARKER_USER)
        passed = (at - timedelta(seconds=settings.out_of_orderness_seconds)).replace(tzinfo=UTC).timestamp()
        poll(
            lambda: job.vertex_watermark(settings, run.job_id, "IntervalJoin") >= passed * 1000,
            60,
            "event time to reach the markers",
        )
        waiting = checkout(f"waiting-{run.job_id}", 1, "p", at + timedelta(seconds=5))
        run.writer.send(run.checkouts, waiting, 0)  # no click: written once event time passes it
        if savepoints.exists():
            savepoints.rename(moved)
        savepoints.write_text("a file where the savepoint directory should be")
        try:
            with caplog.at_level(logging.INFO, logger="attribution"):
                stack_drain = stack.drain_jobs(run.settings)
        finally:
            savepoints.unlink()
            if moved.exists():
                moved.rename(savepoints)
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "did not drain" in warning and "datetime_occured after 2024-06-11 08:59:45 " in warning, (
            warning
        )
        assert stack_drain == [warning]
        assert job.job_status(settings, run.job_id).state == "CANCELED"
        status = cli(run.settings, "status")
        assert f"! a drain failed: job {run.job_id} did not drain" in status, status


def test_dead_letters_are_replayed_once_each_and_marked(settings: Settings) -> None:
    """A producer stamped its Kafka records an hour behind its events: they were dead-lettered as
    from the future. Sent again by `make replay-dead-letters` (with a Kafka timestamp of now),
    they are attributed; the rows are marked, and a second replay sends nothing."""
    stamped = datetime(2020, 1, 1)  # the producer's wrong Kafka timestamp, the filter below
    stamped_ms = int(stamped.replace(tzinfo=UTC).timestamp() * 1000)
    at = stamped + timedelta(hours=1)
    with pipeline(settings, "replay", models=ONE_MODEL_PER_SHAPE) as run:
        clicked = click(f"replayed-click-{run.job_id}", 1, "p-replay", at - timedelta(minutes=1))
        bought = checkout(f"replayed-{run.job_id}", 1, "p-replay", at)
        run.writer.send(run.clicks, clicked, 0, timestamp_ms=stamped_ms)
        run.writer.send(run.checkouts, bought, 0, timestamp_ms=stamped_ms)
        topics = [run.clicks, run.checkouts]
        poll(lambda: len(dead_letters(settings, topics)) == 2, 60, "both records dead-lettered")
        assert {reason for reason, _ in dead_letters(settings, topics).values()} == {
            "datetime_occured_in_future"
        }

        window = ["--since", stamped.isoformat(), "--until", (stamped + timedelta(days=1)).isoformat()]
        replay = ["replay-dead-letters", "--reason", "datetime_occured_in_future", *window]
        assert "sent 2 dead letter(s)" in cli(run.settings, *replay)
        run.flush_through(at + timedelta(minutes=1), MARKER_USER)
        [row] = rows(settings, [bought["checkout_id"]]).values()
        assert row.click_id == clicked["click_id"]
        with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT count(*) FROM {settings.dead_letter_table}"
                " WHERE source_topic = ANY(%s) AND replayed_at IS NOT NULL",
                (topics,),
            )
            assert cur.fetchone() == (2,)
        conn.close()
        assert "sent 0 dead letter(s)" in cli(run.settings, *replay)
        assert len(dead_letters(settings, topics)) == 2  # accepted this time: no new dead letter
