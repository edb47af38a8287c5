"""Helpers for driving the real job: topics, producing to chosen partitions, advancing event time,
reading the result tables, and polling with deadlines."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

import psycopg2
from kafka import KafkaProducer

from attribution import job, stack
from attribution.config import Settings
from tests.reference import Attribution

T = TypeVar("T")


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


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

    def send(self, topic: str, value: dict | str | bytes | None, partition: int) -> Sent:
        if isinstance(value, dict):
            payload: bytes | None = json.dumps(value).encode()
        elif isinstance(value, str):
            payload = value.encode()
        else:
            payload = value
        # A key, because Kafka refuses a record with neither key nor value (the tombstone case).
        metadata = self.producer.send(topic, key=b"test", value=payload, partition=partition).get(timeout=30)
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
        history = job._get(self.settings, f"/jobs/{self.job_id}/exceptions")["exceptionHistory"]["entries"]
        assert history == [], f"the job failed and restarted: {history[0]['stacktrace'][:2000]}"


def click(click_id: str, user_id: int | str, product_id: str | int, at: datetime) -> dict:
    return {
        "click_id": click_id,
        "user_id": user_id,
        "product_id": product_id,
        "product": "widget",
        "price": 9.99,
        "url": "https://example.com/p",
        "user_agent": "test",
        "ip_address": "10.0.0.1",
        "datetime_occured": fmt(at),
    }


def checkout(
    checkout_id: str, user_id: int | str, product_id: str | int, at: datetime, amount: float = 10.5
) -> dict:
    return {
        "checkout_id": checkout_id,
        "user_id": user_id,
        "product_id": product_id,
        "payment_method": "VISA 16 digit",
        "total_amount": amount,
        "shipping_address": "1 Test Street",
        "billing_address": "1 Test Street",
        "user_agent": "test",
        "ip_address": "10.0.0.1",
        "datetime_occured": fmt(at),
    }


@contextmanager
def pipeline(settings: Settings, name: str) -> Iterator[PipelineRun]:
    """Creates fresh topics, submits the job on them, and cancels it afterwards."""
    suffix = f"{name}-{uuid.uuid4().hex[:8]}"
    run_settings = replace(
        settings,
        clicks_topic=f"clicks-{suffix}",
        checkouts_topic=f"checkouts-{suffix}",
        consumer_group_id=f"attribution-{suffix}",
    )
    stack.create_topics(run_settings, [run_settings.clicks_topic, run_settings.checkouts_topic])
    env = {
        **os.environ,
        "CLICKS_TOPIC": run_settings.clicks_topic,
        "CHECKOUTS_TOPIC": run_settings.checkouts_topic,
        "KAFKA_CONSUMER_GROUP": run_settings.consumer_group_id,
        "JOB_NAME": f"test-{suffix}",
    }
    job_id = job.submit(run_settings, env=env)
    writer = EventWriter(run_settings)
    try:
        job.wait_until_running(run_settings, job_id)
        yield PipelineRun(run_settings, job_id, writer)
    finally:
        writer.close()
        job.cancel(run_settings, job_id)


def rows(settings: Settings, checkout_ids: list[str]) -> dict[str, Attribution]:
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"""SELECT checkout_id, user_id, user_name, product_id, click_id, checkout_time, click_time,
                       total_amount
                FROM {settings.sink_table} WHERE checkout_id = ANY(%s)""",
            (checkout_ids,),
        )
        found = {r[0]: Attribution(*r) for r in cur.fetchall()}
    conn.close()
    return found


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
        (count,) = cur.fetchone()
    conn.close()
    return count


def dead_letters(settings: Settings, topics: list[str]) -> dict[tuple[str, int, int], str]:
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT source_topic, source_partition, source_offset, reason FROM {settings.dead_letter_table} "
            "WHERE source_topic = ANY(%s)",
            (topics,),
        )
        found = {(t, p, o): reason for t, p, o, reason in cur.fetchall()}
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


def diff(expected: dict[str, Attribution], actual: dict[str, Attribution]) -> str:
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            lines.append(f"{key}:\n   expected {expected.get(key)}\n   actual   {actual.get(key)}")
    return "\n".join(lines[:30]) + (f"\n... {len(lines) - 30} more" if len(lines) > 30 else "")
