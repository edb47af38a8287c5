"""The case catalogue (tests/cases.py) on the real broker and Postgres, against the reference.

Event times are fixed (March 2024) and each record carries the catalogue's Kafka timestamp, so the
first delivery of a checkout is the same record as in tests/unit/test_rule.py. Event time is
advanced on purpose, on every partition, and the test waits on observable facts (a probe row
written once the watermark passes it), never on sleeps. Generated traffic is the unit test's and
the fault tests' (test_faults.py): this one keeps what needs the stack.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from attribution import job, metrics
from attribution.config import Settings
from tests import cases
from tests.integration.harness import (
    dead_letters,
    diff,
    insert_users,
    model_rows_of,
    pipeline,
    poll,
)
from tests.reference import expected_by_model
from tests.unit.test_deployment import dashboard_metric_names

pytestmark = pytest.mark.integration

MIN = timedelta(minutes=1)


def test_the_case_catalogue_matches_the_reference_in_every_model(settings: Settings) -> None:
    """Every enabled model's rows, as Postgres serves them (views and triggers included), and
    every dead letter."""
    catalogue = cases.adversarial(settings)
    insert_users(settings, catalogue.users)

    def expected(with_late: bool) -> dict[str, dict]:
        clicks, checkouts = catalogue.valid("clicks"), catalogue.valid("checkouts", with_late)
        return expected_by_model(settings.models, clicks, checkouts, catalogue.users)

    def assert_exact(want: dict[str, dict], timeout: float) -> dict[str, dict]:
        ids = sorted({key_checkout(k) for rows in want.values() for k in rows})
        found = model_rows_of(settings, ids)
        deadline = time.monotonic() + timeout
        while found != want and time.monotonic() < deadline:
            time.sleep(0.5)
            found = model_rows_of(settings, ids)
        for model in settings.models:
            assert found[model] == want[model], f"{model}:\n" + diff(want[model], found[model])
        return found

    with pipeline(settings, "cases") as run:
        topic_of = {"clicks": run.clicks, "checkouts": run.checkouts}
        expected_dead: dict[tuple[str, int, int], tuple[str, str]] = {}
        for record in catalogue.records:
            # As the unit test writes it: JSON in UTF-8, not ASCII escapes (case 18 is at the limit).
            sent = run.writer.send(
                topic_of[record.topic], record.payload, record.partition, millis(record.send_at)
            )
            if record.reason:
                # Stored as sent, without NUL characters (Postgres text cannot hold them), cut.
                stored = (record.payload or "").replace("\x00", "")[: settings.max_payload_chars]
                expected_dead[(sent.topic, sent.partition, sent.offset)] = (record.reason, stored)
        run.flush_through(max(r.send_at for r in catalogue.records if r.valid) + MIN, cases.MARKER_USER)

        found = assert_exact(expected(with_late=False), timeout=90)
        assert (
            found["first_click"]["co10"].user_name is None and found["first_click"]["co10"].click_id == "c10"
        )

        topics = [run.clicks, run.checkouts]
        poll(lambda: dead_letters(settings, topics).keys() == expected_dead.keys(), 30, "every dead letter")
        stored_dead = dead_letters(settings, topics)
        assert stored_dead == expected_dead, diff_dead(expected_dead, stored_dead)
        # ... and counted in a metric: records into the dead-letter sink.
        poll(
            lambda: (
                job.vertex_metric(settings, run.job_id, "dead_letters", "read-records") == len(expected_dead)
            ),
            60,
            "the dead-letter sink's record count metric",
        )
        # ... and by reason in the job's business counter, as Prometheus scrapes it.
        by_reason = dict(Counter(reason for reason, _ in expected_dead.values()))
        poll(
            lambda: (
                metrics.business_counts(metrics.scrape(settings), run.job_id).get("malformed_records")
                == by_reason
            ),
            60,
            f"attribution_reason_malformed_records == {by_reason}",
        )

        # A checkout whose time the watermark has already passed is still written, and joined at
        # once with the clicks still in state (click state lasts one window past the watermark).
        for record in catalogue.late:
            run.writer.send(topic_of[record.topic], record.payload, record.partition, millis(record.send_at))
        assert_exact(expected(with_late=True), timeout=60)
        # ... and counted as late, by the business counter.
        poll(
            lambda: (
                metrics.business_counts(metrics.scrape(settings), run.job_id)
                .get("late_events", {})
                .get("checkouts", 0)
                >= 1
            ),
            30,
            "attribution_topic_late_events{topic=checkouts}",
        )
        # Every metric the Grafana dashboard's Prometheus queries read is one this job really exports
        # (dashboard_metric_names skips the Postgres panel: its SQL is not PromQL).
        exported = {sample.name for sample in metrics.scrape(settings)}
        assert not dashboard_metric_names() - exported, dashboard_metric_names() - exported
        run.assert_healthy()


def key_checkout(key: str | tuple[str, str]) -> str:
    """The checkout_id of a model's row key (a one-click model's key is the checkout_id)."""
    return key if isinstance(key, str) else key[0]


def millis(moment: datetime) -> int:
    """A Kafka timestamp: milliseconds since the epoch, of a UTC time."""
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def diff_dead(expected: dict, actual: dict) -> str:
    return "\n".join(
        f"{key}: expected {expected[key][0]} {expected[key][1][:80]!r}, "
        f"got {actual[key][0]} {actual[key][1][:80]!r}"
        for key in sorted(expected)
        if expected[key] != actual.get(key)
    )
