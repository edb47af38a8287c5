"""Helpers for driving the real job: topics, producing to chosen partitions, advancing event time,
reading the result tables, and polling with deadlines."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import TypeVar

import psycopg2
from kafka import KafkaProducer

from attribution import job, keeper, provision
from attribution.config import Settings
from attribution.models import MODELS
from datagen.gen_fake_data import TrafficShape, simulated_events
from tests.events import checkout, click
from tests.reference import Attribution, Touch, expected_by_model, parse_time

T = TypeVar("T")


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Calls `check` until it returns something other than None/False, or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    offset: int


class EventWriter:
    """Produces raw values to explicit partitions and remembers where each one landed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks=1, linger_ms=5)

    def send(
        self, topic: str, value: dict | str | bytes | None, partition: int, timestamp_ms: int | None = None
    ) -> Sent:
        if isinstance(value, dict):
            payload: bytes | None = json.dumps(value).encode()
        elif isinstance(value, str):
            payload = value.encode()
        else:
            payload = value
        # A key, because Kafka refuses a record with neither key nor value (the tombstone case).
        metadata = self.producer.send(
            topic, key=b"test", value=payload, partition=partition, timestamp_ms=timestamp_ms
        ).get(timeout=30)
        return Sent(topic, metadata.partition, metadata.offset)

    def send_async(self, topic: str, value: dict, partition: int) -> None:
        self.producer.send(topic, value=json.dumps(value).encode(), partition=partition)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


@dataclass
class PipelineRun:
    """A job reading its own pair of topics, so that runs do not see each other's events."""

    settings: Settings
    job_id: str
    writer: EventWriter

    def current_job_id(self) -> str | None:
        """The id of the run's job now active on the cluster (the keeper may have resubmitted it)."""
        active = job.active_jobs(self.settings, self.settings.job_name)
        return active[0].job_id if active else None

    def send_all(self, events: list[tuple[str, dict]], rng: random.Random) -> None:
        topic_of = {"clicks": self.clicks, "checkouts": self.checkouts}
        for topic, event in events:
            self.writer.send_async(topic_of[topic], event, rng.randrange(self.settings.topic_partitions))
        self.writer.producer.flush()

    def checkpoints_completed(self) -> int:
        return job.rest_get(self.settings, f"/jobs/{self.job_id}/checkpoints")["counts"]["completed"]

    def wait_for_new_checkpoint(self) -> None:
        before = self.checkpoints_completed()
        poll(lambda: self.checkpoints_completed() > before, 60, "a completed checkpoint")

    @property
    def clicks(self) -> str:
        return self.settings.clicks_topic

    @property
    def checkouts(self) -> str:
        return self.settings.checkouts_topic

    def advance_event_time(self, to: datetime, marker_user: int) -> None:
        """Sends a click and a checkout stamped `to` on every partition of both topics, so every
        split's watermark reaches `to` minus the out-of-orderness bound."""
        for partition in range(self.settings.topic_partitions):
            self.writer.send(self.clicks, click(f"wm-click-{uuid.uuid4()}", marker_user, "wm", to), partition)
            self.writer.send(
                self.checkouts, checkout(f"wm-checkout-{uuid.uuid4()}", marker_user, "wm", to), partition
            )
        self.writer.producer.flush()

    def flush_through(self, moment: datetime, marker_user: int) -> None:
        """Returns once the job's event time has passed `moment`: a probe checkout stamped `moment`
        (with no possible click) is written once the join's watermark passes it, which happens
        only after every earlier record on every partition has gone through the join."""
        probe_id = f"probe-{uuid.uuid4()}"
        self.writer.send(self.checkouts, checkout(probe_id, marker_user, "probe", moment), 0)
        bound = timedelta(seconds=self.settings.out_of_orderness_seconds)
        self.advance_event_time(moment + bound + timedelta(seconds=1), marker_user)
        poll(lambda: probe_id in rows(self.settings, [probe_id]), 120, f"probe {probe_id} to be written")

    def assert_healthy(self) -> None:
        status = job.job_status(self.settings, self.job_id)
        assert status.fully_running, status
        history = job.exception_history(self.settings, self.job_id)
        assert history == [], f"the job failed and restarted: {history[0]['stacktrace'][:2000]}"


@contextmanager
def pipeline(
    settings: Settings, name: str, kept: bool = False, models: tuple[str, ...] | None = None
) -> Iterator[PipelineRun]:
    """Creates fresh topics, submits the job on them, and cancels it afterwards. A `kept` job is
    started as `make job` starts one: the keeper brings it back after a fault. `models`: its
    ATTRIBUTION_MODELS, if not the test stack's (every model)."""
    suffix = f"{name}-{uuid.uuid4().hex[:8]}"
    run_settings = replace(
        settings,
        attribution_models=",".join(models) if models else settings.attribution_models,
        clicks_topic=f"clicks-{suffix}",
        checkouts_topic=f"checkouts-{suffix}",
        consumer_group_id=f"attribution-{suffix}",
        job_name=f"test-{suffix}",
    )
    provision.create_topics(run_settings, [run_settings.clicks_topic, run_settings.checkouts_topic])
    job_id = keeper.start_job(run_settings, fresh=True) if kept else job.submit(run_settings)
    writer = EventWriter(run_settings)
    try:
        job.wait_until_running(run_settings, job_id)
        yield PipelineRun(run_settings, job_id, writer)
    finally:
        writer.close()
        if kept:
            keeper.stop_job(run_settings, cancel=True)
        for active in job.active_jobs(run_settings, run_settings.job_name):
            job.cancel(run_settings, active.job_id)


def rows(settings: Settings, checkout_ids: list[str], model: str = "first_click") -> dict[str, Attribution]:
    """The rows of these checkouts in a one-click model's table."""
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            # Every column, in the order of Attribution's fields.
            f"""SELECT {", ".join(f.name for f in fields(Attribution))}
                FROM {settings.model_table(model)} WHERE checkout_id = ANY(%s)""",
            (checkout_ids,),
        )
        found = {r[0]: Attribution(*r) for r in cur.fetchall()}
    conn.close()
    return found


def touches(settings: Settings, checkout_ids: list[str], model: str) -> dict[tuple[str, str], Touch]:
    """A touches model's rows of these checkouts, as its view serves them, by (checkout_id, click_id)."""
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"""SELECT {", ".join(f.name for f in fields(Touch))}
                FROM {settings.model_table(model)} WHERE checkout_id = ANY(%s)""",
            (checkout_ids,),
        )
        found = {(r[0], r[1]): Touch(*r) for r in cur.fetchall()}
    conn.close()
    return found


def model_rows_of(settings: Settings, checkout_ids: list[str]) -> dict[str, dict]:
    """Each enabled model's rows of these checkouts."""
    return {
        model: rows(settings, checkout_ids, model)
        if MODELS[model].shape == "one_click"
        else touches(settings, checkout_ids, model)
        for model in settings.models
    }


def model_rows(settings: Settings, load: Workload) -> dict[str, dict]:
    """Each enabled model's rows of the workload's checkouts."""
    return model_rows_of(settings, list(load.expected))


def wait_for_models(settings: Settings, load: Workload, timeout: float = 90) -> dict[str, dict]:
    """Polls until every enabled model's rows equal the reference; returns what is there at the
    end either way, for the caller's assertion (assert_models_exact)."""
    expected = load.expected_by_model(settings.models)
    deadline = time.monotonic() + timeout
    found = model_rows(settings, load)
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found = model_rows(settings, load)
    return found


# One model of each shape: the job's work differs by shape only (the touches models differ in their
# Postgres view), so the tests whose subject is not the models (faults, hostile records, the CLI) run these.
ONE_MODEL_PER_SHAPE = tuple({model.shape: model.name for model in reversed(MODELS.values())}.values())[::-1]


def assert_models_exact(settings: Settings, load: Workload, timeout: float = 90) -> None:
    """Every enabled model's table equals the reference for the workload's checkouts."""
    found = wait_for_models(settings, load, timeout)
    expected = load.expected_by_model(settings.models)
    for model in settings.models:
        assert found[model] == expected[model], f"{model}:\n" + diff(expected[model], found[model])


def wait_for_rows(settings: Settings, expected: dict[str, Attribution], timeout: float = 90) -> dict:
    """Polls until the rows of the expected checkouts equal the expectation; returns what is there
    at the end either way, for the caller's assertion and diff."""
    deadline = time.monotonic() + timeout
    found = rows(settings, list(expected))
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found = rows(settings, list(expected))
    return found


def row_count(settings: Settings, checkout_ids: list[str]) -> int:
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT count(*) FROM {settings.sink_table} WHERE checkout_id = ANY(%s)", (checkout_ids,)
        )
        (count,) = cur.fetchall()[0]
    conn.close()
    return count


def dead_letters(settings: Settings, topics: list[str]) -> dict[tuple[str, int, int], tuple[str, str]]:
    """(topic, partition, offset) -> (reason, stored payload) of the dead letters of these topics."""
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT source_topic, source_partition, source_offset, reason, payload "
            f"FROM {settings.dead_letter_table} WHERE source_topic = ANY(%s)",
            (topics,),
        )
        found = {(t, p, o): (reason, payload) for t, p, o, reason, payload in cur.fetchall()}
    conn.close()
    return found


def insert_users(settings: Settings, users: dict[int, str]) -> None:
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        for user_id, name in users.items():
            cur.execute(
                "INSERT INTO commerce.users (id, username, password) VALUES (%s, %s, 'x') "
                "ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username",
                (user_id, name),
            )
    conn.close()


def diff(expected: dict, actual: dict) -> str:
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            lines.append(f"{key}:\n   expected {expected.get(key)}\n   actual   {actual.get(key)}")
    return "\n".join(lines[:30]) + (f"\n... {len(lines) - 30} more" if len(lines) > 30 else "")


@dataclass(frozen=True)
class Workload:
    events: list[tuple[str, dict]]
    users: dict[int, str]
    by_model: dict[str, dict]  # every model's rows, by the reference

    @property
    def expected(self) -> dict[str, Attribution]:
        """The first_click rows: one per checkout."""
        return self.by_model["first_click"]

    def expected_by_model(self, models: tuple[str, ...]) -> dict[str, dict]:
        return {model: self.by_model[model] for model in models}

    @property
    def last_event_time(self) -> datetime:
        return max(parse_time(e["datetime_occured"]) for _, e in self.events)


def workload(
    settings: Settings,
    seed: int,
    count: int,
    user_offset: int,
    start: datetime,
    shape: TrafficShape | None = None,
) -> Workload:
    """Generated traffic on a simulated clock, with ids and users of its own, its users inserted
    into commerce.users, and the reference's answer."""
    shape = shape or TrafficShape(users=30, products=10, jitter_seconds=5.0)
    events = list(simulated_events(seed, count, start, events_per_second=0.5, shape=shape))
    suffix = f"-{user_offset}"
    for _, event in events:
        event["user_id"] += user_offset
        event["checkout_id" if "checkout_id" in event else "click_id"] += suffix
    users = {user_offset + i: f"user-{user_offset + i}" for i in range(1, shape.users + 1)}
    insert_users(settings, users)
    clicks = [e for t, e in events if t == "clicks"]
    checkouts = [e for t, e in events if t == "checkouts"]
    return Workload(events, users, expected_by_model(MODELS, clicks, checkouts, users))
