"""The real job on the real broker and Postgres, against the reference implementation.

Event times are fixed (March 2024); event time is advanced on purpose, on every partition, and the
tests wait on observable facts (a probe row written once the watermark passes it), never on sleeps.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from attribution import job, metrics
from attribution.config import Settings
from datagen.gen_fake_data import TrafficShape
from tests.bad_records import bad_records, widest_id
from tests.events import checkout, click
from tests.integration.harness import (
    assert_models_exact,
    dead_letters,
    diff,
    insert_users,
    pipeline,
    poll,
    rows,
    wait_for_rows,
    workload,
)
from tests.reference import attribute
from tests.unit.test_deployment import dashboard_metric_names

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 10, 0, 0)
HOUR = timedelta(hours=1)
MS = timedelta(milliseconds=1)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
MARKER_USER = 999_999_999


@dataclass
class Planned:
    topic: str  # "clicks" or "checkouts"
    value: dict | str | bytes | None
    partition: int
    send_at: datetime  # production order; later than the event time for out-of-order events
    reason: str | None = None  # expected dead-letter reason

    @property
    def event(self) -> dict:
        """The value of a record sent as a JSON object: every valid one."""
        assert isinstance(self.value, dict), self.value
        return self.value


def test_adversarial_cases_match_reference_and_bad_records_are_dead_lettered(settings: Settings) -> None:
    base_user = 1_000_000
    plan: list[Planned] = []
    case_checkouts: list[str] = []

    def add_click(
        click_id: str,
        user: int | str,
        product: str | int,
        at: datetime,
        partition: int = 0,
        delay: timedelta = timedelta(0),
    ) -> None:
        plan.append(Planned("clicks", click(click_id, user, product, at), partition, at + delay))

    def add_checkout(
        checkout_id: str,
        user: int | str,
        product: str | int,
        at: datetime,
        partition: int = 1,
        delay: timedelta = timedelta(0),
    ) -> None:
        plan.append(Planned("checkouts", checkout(checkout_id, user, product, at), partition, at + delay))
        if checkout_id not in case_checkouts:
            case_checkouts.append(checkout_id)

    def t(case: int) -> datetime:
        return T0 + 2 * HOUR + case * MIN

    u = {k: base_user + k for k in range(1, 20)}
    # 1. A click exactly one hour before counts (inclusive lower bound).
    add_click("c1", u[1], "p1", t(1) - HOUR)
    add_checkout("co1", u[1], "p1", t(1))
    # 2. One millisecond more does not.
    add_click("c2", u[2], "p2", t(2) - HOUR - MS)
    add_checkout("co2", u[2], "p2", t(2))
    # 3. A click at the checkout's own millisecond counts (inclusive upper bound).
    add_click("c3", u[3], "p3", t(3), partition=1)
    add_checkout("co3", u[3], "p3", t(3), partition=0)
    # 4. A click after the checkout never counts.
    add_click("c4", u[4], "p4", t(4) + MS)
    add_checkout("co4", u[4], "p4", t(4))
    # 5. The earliest of several clicks in the hour.
    add_click("c5-late", u[5], "p5", t(5) - 10 * MIN)
    add_click("c5-early", u[5], "p5", t(5) - 50 * MIN, partition=1)
    add_click("c5-mid", u[5], "p5", t(5) - 30 * MIN)
    add_click("c5-too-old", u[5], "p5", t(5) - 61 * MIN)
    add_checkout("co5", u[5], "p5", t(5))
    # 6. The click arrives after the checkout (5 s older, delivered 8 s later: within the bound).
    add_checkout("co6", u[6], "p6", t(6))
    add_click("c6", u[6], "p6", t(6) - 5 * SEC, delay=13 * SEC)
    # 7. An earlier click arrives after a later one: the attribution moves to the earlier click.
    add_click("c7-later", u[7], "p7", t(7) - 20 * MIN)
    add_click("c7-earlier", u[7], "p7", t(7) - 20 * MIN - 6 * SEC, delay=7 * SEC)
    add_checkout("co7", u[7], "p7", t(7))
    # 8. A click on another product, 9. a click by another user: neither counts.
    add_click("c8", u[8], "p8-other", t(8) - MIN)
    add_checkout("co8", u[8], "p8", t(8))
    add_click("c9", u[19], "p9", t(9) - MIN)
    add_checkout("co9", u[9], "p9", t(9))
    # 10. Unknown user: written and attributed, user_name NULL.
    add_click("c10", u[10], "p10", t(10) - MIN)
    add_checkout("co10", u[10], "p10", t(10))
    # 11. The same checkout delivered twice (the copy on the other partition): one row.
    add_click("c11", u[11], "p11", t(11) - MIN)
    add_checkout("co11", u[11], "p11", t(11), partition=1)
    add_checkout("co11", u[11], "p11", t(11), partition=0, delay=2 * SEC)
    # 12. Repeat purchases of one product, each attributed on its own.
    add_click("c12-a", u[12], "p12", t(12) - 70 * MIN)
    add_checkout("co12-1", u[12], "p12", t(12) - 60 * MIN)  # a is 10 min before: a
    add_checkout("co12-3", u[12], "p12", t(12) - 40 * MIN)  # a is 30 min before: a
    add_click("c12-b", u[12], "p12", t(12) - 5 * MIN)
    add_checkout("co12-2", u[12], "p12", t(12))  # a is 70 min before: b
    # 13. No click at all.
    add_checkout("co13", u[13], "p13", t(13))
    # 14. Numbers and strings for the same ids match; unknown fields are ignored.
    plan.append(
        Planned("clicks", {**click("c14", str(u[14]), 14, t(14) - MIN), "campaign": "x"}, 0, t(14) - MIN)
    )
    add_checkout("co14", u[14], "14", t(14))
    # 15. Two clicks at the same millisecond: the smaller click_id wins.
    add_click("c15-b", u[15], "p15", t(15) - 10 * MIN)
    add_click("c15-a", u[15], "p15", t(15) - 10 * MIN, partition=1)
    add_checkout("co15", u[15], "p15", t(15))
    # 16. A click for the late checkout sent after event time has moved on (phase 2).
    add_click("c16", u[16], "p16", t(16) - 5 * MIN)

    # 18. Ids of exactly ID_MAX_CHARS characters of 4 bytes: the widest keys Postgres is given.
    add_click(widest_id("c18-"), u[18], "p18", t(18) - MIN)
    add_checkout(widest_id("co18-"), u[18], "p18", t(18))

    # Bad records, interleaved with the good ones.
    bad_at = t(3)
    ok_click = click("bad", u[17], "p17", bad_at)
    ok_checkout = checkout("bad", u[17], "p17", bad_at)
    # Sent now: a Kafka timestamp of now (the events' own times are in 2024).
    bad = bad_records(ok_click, ok_checkout, settings.max_payload_chars, sent_at=utc_now())
    for i, (topic, value, reason) in enumerate(bad):
        plan.append(Planned(topic, value, i % 2, bad_at, reason))

    users = {u[k]: f"user-{k}" for k in range(1, 20) if k != 10}
    insert_users(settings, users)
    plan.sort(key=lambda p: p.send_at)
    last_event = max(p.send_at for p in plan)

    with pipeline(settings, "adversarial") as run:
        topic_of = {"clicks": run.clicks, "checkouts": run.checkouts}
        expected_dead: dict[tuple[str, int, int], tuple[str, str]] = {}
        for item in plan:
            sent = run.writer.send(topic_of[item.topic], item.value, item.partition)
            if item.reason:
                # Stored as sent, without NUL characters (Postgres text cannot hold them), cut.
                stored = stored_text(item.value).replace("\x00", "")[: settings.max_payload_chars]
                expected_dead[(sent.topic, sent.partition, sent.offset)] = (item.reason, stored)

        run.flush_through(last_event + MIN, MARKER_USER)

        valid_clicks = [p.event for p in plan if p.topic == "clicks" and p.reason is None]
        valid_checkouts = [p.event for p in plan if p.topic == "checkouts" and p.reason is None]
        expected = attribute(valid_clicks, valid_checkouts, users)
        expected = {k: expected[k] for k in case_checkouts}
        # The reference itself is checked on the cases whose answer is written down here.
        assert {k: expected[k].click_id for k in ("co1", "co2", "co3", "co4", "co5", "co6", "co7")} == {
            "co1": "c1",
            "co2": None,
            "co3": "c3",
            "co4": None,
            "co5": "c5-early",
            "co6": "c6",
            "co7": "c7-earlier",
        }
        assert [expected[k].click_id for k in ("co12-1", "co12-3", "co12-2")] == ["c12-a", "c12-a", "c12-b"]

        final = wait_for_rows(settings, expected)
        assert final == expected, diff(expected, final)
        assert final["co10"].user_name is None and final["co10"].click_id == "c10"

        topics = [run.clicks, run.checkouts]
        poll(lambda: dead_letters(settings, topics).keys() == expected_dead.keys(), 30, "every dead letter")
        stored_dead = dead_letters(settings, topics)
        assert stored_dead == expected_dead, diff_dead(expected_dead, stored_dead)
        assert not rows(settings, ["bad-neg", "bad-huge", "bad-amt", "bad-nouser", "bad-fut"])
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

        # Phase 2: a checkout whose time the watermark has already passed is still written, and
        # joined at once with the clicks still in state: c16, 5 minutes before it (click state
        # lasts one window past the watermark).
        late_checkout = checkout("co16-late", u[16], "p16", t(16))
        run.writer.send(run.checkouts, late_checkout, 0)
        expected_late = attribute(valid_clicks, [late_checkout], users)
        assert expected_late["co16-late"].click_id == "c16"
        final_late = wait_for_rows(settings, expected_late, timeout=60)
        assert final_late == expected_late, diff(expected_late, final_late)
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


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_randomized_stream_matches_reference(settings: Settings) -> None:
    """A few thousand generated events (sessions, repeat purchases, stale and orphan checkouts,
    unknown users, timestamps up to 5 s out of order) against the reference."""
    shape = TrafficShape(users=40, products=15, jitter_seconds=5.0, repeat_purchase_probability=0.3)
    load = workload(
        settings, seed=7, count=4000, user_offset=2_000_000, start=datetime(2024, 5, 1, 8), shape=shape
    )
    attributed = sum(1 for a in load.expected.values() if a.click_id)
    # The mix is meaningful: both outcomes and unknown users are present.
    assert 0.3 * len(load.expected) < attributed < 0.95 * len(load.expected), (attributed, len(load.expected))
    assert any(a.user_name is None for a in load.expected.values())

    with pipeline(settings, "random") as run:
        run.send_all(load.events, random.Random(3))
        run.flush_through(load.last_event_time + MIN, MARKER_USER)
        assert_models_exact(settings, load)  # every model the test stack enables
        run.assert_healthy()
    print(f"\nrandomized: {len(load.events)} events, {len(load.expected)} checkouts, {attributed} attributed")


def stored_text(value: dict | str | bytes | None) -> str:
    """A record's value as the EventWriter sends it, as text (a tombstone: empty)."""
    if isinstance(value, dict):
        return json.dumps(value)
    return value.decode() if isinstance(value, bytes) else (value or "")


def diff_dead(expected: dict, actual: dict) -> str:
    return "\n".join(
        f"{key}: expected {expected[key][0]} {expected[key][1][:80]!r}, "
        f"got {actual[key][0]} {actual[key][1][:80]!r}"
        for key in sorted(expected)
        if expected[key] != actual.get(key)
    )
