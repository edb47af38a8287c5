"""The adversarial cases, each named once with its answer per model: bounds, ordering, duplicates,
ties, odd fields, widest ids, bad records of every reason, a wrong producer clock and a late
checkout. tests/unit/test_rule.py runs them on a local TableEnvironment, and
tests/integration/test_attribution.py on the real broker and Postgres, each against
tests/reference.py; the answers written down here check the reference itself.

Each record carries its Kafka timestamp (send_at): the unit test writes it as the record's
timestamp, the integration test sends it as such, so the first delivery of a checkout is the same
record in both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from attribution.config import Settings
from tests.bad_records import bad_records, widest_id
from tests.events import checkout, click

T0 = datetime(2024, 3, 1, 10, 0, 0)
HOUR = timedelta(hours=1)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
MS = timedelta(milliseconds=1)
BASE_USER = 1_000_000
USERS = 40  # u[1..USERS]
UNKNOWN_USERS = (10, 34)  # not in the users table
MARKER_USER = 999_999_999  # the user of the events that move event time on


@dataclass
class Record:
    """One Kafka record: its topic, value (a dict is sent as its JSON, in UTF-8), partition and
    Kafka timestamp (send_at, also the send order); the dead-letter reason it must get."""

    topic: str
    value: dict | str | None
    partition: int
    send_at: datetime
    reason: str | None = None
    offset: int = -1  # where it landed, once written

    @property
    def payload(self) -> str | None:
        return json.dumps(self.value, ensure_ascii=False) if isinstance(self.value, dict) else self.value

    @property
    def valid(self) -> bool:
        return self.reason is None

    @property
    def event(self) -> dict:
        """The value of a record sent as a JSON object: every valid one."""
        assert isinstance(self.value, dict), self.value
        return self.value


@dataclass
class Catalogue:
    records: list[Record]  # sent first, in send_at order
    late: list[Record]  # sent once event time has passed them (after the markers)
    users: dict[int, str]
    # Written down by hand, per model and checkout_id: the one-click models' click_id (None: no
    # click), the touches models' number of rows.
    answers: dict[str, Mapping[str, object]]
    credits: dict[str, Decimal | None]  # linear: the credit of each row of the checkout
    click_credits: dict[tuple[str, str, str], Decimal | None]  # (model, checkout_id, click_id)
    click_times: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (model, checkout)

    def valid(self, topic: str, with_late: bool = True) -> list[dict]:
        """The valid events of a topic, in send order."""
        records = self.records + (self.late if with_late else [])
        return [r.event for r in sorted(records, key=lambda r: r.send_at) if r.valid and r.topic == topic]


def t(case: int) -> datetime:
    return T0 + 2 * HOUR + case * MIN


def markers(at: datetime) -> list[Record]:
    """A click and a checkout that move event time to `at` (partition 0 of each topic; an idle
    partition does not hold the watermark back)."""
    return [
        Record("clicks", click("wm-click", MARKER_USER, "wm", at), 0, at),
        Record("checkouts", checkout("wm-checkout", MARKER_USER, "wm", at), 0, at),
    ]


def adversarial(settings: Settings) -> Catalogue:
    plan: list[Record] = []

    def add_click(
        click_id: str,
        user: int | str,
        product: str | int,
        at: datetime,
        partition: int = 0,
        delay: timedelta = timedelta(0),
        **extra: object,
    ) -> None:
        plan.append(Record("clicks", click(click_id, user, product, at, **extra), partition, at + delay))

    def add_checkout(
        checkout_id: str,
        user: int | str,
        product: str | int,
        at: datetime,
        partition: int = 1,
        delay: timedelta = timedelta(0),
        **extra: object,
    ) -> None:
        plan.append(
            Record("checkouts", checkout(checkout_id, user, product, at, **extra), partition, at + delay)
        )

    u = {k: BASE_USER + k for k in range(1, USERS + 1)}
    # 1. A click exactly one hour before counts (inclusive lower bound); 2. one millisecond more not.
    add_click("c1", u[1], "p1", t(1) - HOUR)
    add_checkout("co1", u[1], "p1", t(1))
    add_click("c2", u[2], "p2", t(2) - HOUR - MS)
    add_checkout("co2", u[2], "p2", t(2))
    # 3. A click at the checkout's own millisecond counts (inclusive upper bound); 4. one after not.
    add_click("c3", u[3], "p3", t(3), partition=1)
    add_checkout("co3", u[3], "p3", t(3), partition=0)
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
    add_click("c14", str(u[14]), 14, t(14) - MIN, campaign="x")
    add_checkout("co14", u[14], "14", t(14))
    # 15. Clicks at the same millisecond: the smallest click_id in byte order (UTF-8, not UTF-16:
    # U+FF21 sorts before U+1F600 in UTF-8 and after it in UTF-16; 'B' before 'a').
    add_click("c15-b", u[15], "p15", t(15) - 10 * MIN)
    add_click("c15-a", u[15], "p15", t(15) - 10 * MIN, partition=1)
    add_click("c15-B", u[15], "p15", t(15) - 10 * MIN)
    add_checkout("co15", u[15], "p15", t(15))
    add_click("c15-\U0001f600", u[20], "p15", t(15) - 10 * MIN)
    add_click("c15-\uff21", u[20], "p15", t(15) - 10 * MIN, partition=1)
    add_checkout("co15-utf8", u[20], "p15", t(15))
    # 16. A click for the late checkout (sent once event time has moved past it: `late`).
    add_click("c16", u[16], "p16", t(16) - 5 * MIN)
    # 17. Descriptive fields absent, null or typed otherwise; amounts rounded half up, at the limit.
    add_checkout("co17-bare", u[17], "p17", t(17), total_amount=None, payment_method=None)
    plan[-1].value = {k: v for k, v in plan[-1].event.items() if k not in {"shipping_address", "ip_address"}}
    add_checkout(
        "co17-typed", u[17], "p17", t(17) + SEC, total_amount="12.345", user_agent=42, ip_address=True
    )
    add_checkout("co17-max", u[17], "p17", t(17) + 2 * SEC, total_amount=99999999.99)
    add_checkout("co17-zero", u[17], "p17", t(17) + 3 * SEC, total_amount=0, billing_address=["no", "array"])
    # 18. A click of exactly MAX_PAYLOAD_CHARS characters is accepted (one more is a bad record).
    big = click("c18", u[18], "p18", t(18) - MIN, url="")
    big["url"] = "é" * (settings.max_payload_chars - len(json.dumps(big, ensure_ascii=False)))
    plan.append(Record("clicks", big, 0, t(18) - MIN))
    assert len(plan[-1].payload or "") == settings.max_payload_chars
    add_checkout("co18", u[18], "p18", t(18))

    # The other models (cases 1-18 are theirs too; 15 has last_click's ties). "After the checkout"
    # is in its topic's send order and event time: each topic is read by a source of its own, so
    # whether the job sees the click before or after the checkout varies.
    # 25. A later click arrives after the checkout (5 s older, 8 s after it): last_click moves to it.
    add_click("c25-early", u[25], "p25", t(25) - 10 * MIN)
    add_checkout("co25", u[25], "p25", t(25))
    add_click("c25-late", u[25], "p25", t(25) - 5 * SEC, delay=13 * SEC)
    # 26. An earlier click arrives after the checkout (3 s after it): last_click stays.
    add_click("c26-late", u[26], "p26", t(26) - 5 * SEC)
    add_checkout("co26", u[26], "p26", t(26))
    add_click("c26-earlier", u[26], "p26", t(26) - 10 * SEC, delay=13 * SEC, partition=1)
    # 27. linear: three touches, then a fourth arrives after the checkout: every row's credit
    # goes from 10.00 / 3 to 10.00 / 4.
    add_click("c27-a", u[27], "p27", t(27) - 30 * MIN)
    add_click("c27-b", u[27], "p27", t(27) - 20 * MIN, partition=1)
    add_click("c27-c", u[27], "p27", t(27) - 10 * MIN)
    add_checkout("co27", u[27], "p27", t(27), total_amount=10.00)
    add_click("c27-d", u[27], "p27", t(27) - 4 * SEC, delay=13 * SEC)
    # 28. Amounts not divisible by the touches: 10.00 / 3 (rounded down), and a repeat purchase a
    # second later, 20.00 / 3 (rounded up), with the same three clicks.
    add_click("c28-a", u[28], "p28", t(28) - 3 * MIN)
    add_click("c28-b", u[28], "p28", t(28) - 2 * MIN, partition=1)
    add_click("c28-c", u[28], "p28", t(28) - 1 * MIN)
    add_checkout("co28", u[28], "p28", t(28), total_amount=10)
    add_checkout("co28-up", u[28], "p28", t(28) + SEC, total_amount="20.00")
    # 29. A click and a checkout each delivered twice (the copy on the other partition): two touches.
    add_click("c29-a", u[29], "p29", t(29) - 10 * MIN)
    add_click("c29-a", u[29], "p29", t(29) - 10 * MIN, partition=1, delay=SEC)
    add_click("c29-b", u[29], "p29", t(29) - 2 * MIN)
    add_checkout("co29", u[29], "p29", t(29), partition=1)
    add_checkout("co29", u[29], "p29", t(29), partition=0, delay=2 * SEC)
    # 30. One click_id at three times: too old, 10 min before, and 5 s before that (arriving 5 s
    # after the 10 min one): one touch at its earliest qualifying time.
    add_click("c30", u[30], "p30", t(30) - 61 * MIN)
    add_click("c30", u[30], "p30", t(30) - 10 * MIN)
    add_click("c30", u[30], "p30", t(30) - 10 * MIN - 5 * SEC, delay=10 * SEC)
    add_checkout("co30", u[30], "p30", t(30))
    # 31. Both bounds at once: the clicks exactly 1 h before and at the checkout count, 1 ms
    # outside either not.
    add_click("c31-too-old", u[31], "p31", t(31) - HOUR - MS)
    add_click("c31-lower", u[31], "p31", t(31) - HOUR)
    add_click("c31-upper", u[31], "p31", t(31), partition=1)
    add_click("c31-too-new", u[31], "p31", t(31) + MS)
    add_checkout("co31", u[31], "p31", t(31), partition=0)
    # 32. Repeat purchases sharing a click: the first has a, the second a and b.
    add_click("c32-a", u[32], "p32", t(32) - 50 * MIN)
    add_checkout("co32-1", u[32], "p32", t(32) - 30 * MIN)
    add_click("c32-b", u[32], "p32", t(32) - 20 * MIN)
    add_checkout("co32-2", u[32], "p32", t(32))
    # 33. No amount: two touches without credit.
    add_click("c33-a", u[33], "p33", t(33) - 2 * MIN)
    add_click("c33-b", u[33], "p33", t(33) - 1 * MIN)
    add_checkout("co33", u[33], "p33", t(33), total_amount=None)
    # 34. Unknown user with two clicks: every model writes it.
    add_click("c34-a", u[34], "p34", t(34) - 2 * MIN)
    add_click("c34-b", u[34], "p34", t(34) - 1 * MIN)
    add_checkout("co34", u[34], "p34", t(34))
    # 35. Ids of exactly ID_MAX_CHARS characters of 4 bytes: the widest keys (one more is rejected).
    add_click(widest_id("c35-"), u[35], "p35", t(35) - MIN)
    add_checkout(widest_id("co35-"), u[35], "p35", t(35))
    # 36. A checkout delivered again with other content (product, time, amount, user): the first
    # delivery wins every column, in every model; the copy's own clicks attribute nothing.
    add_click("c36", u[36], "p36", t(36) - 5 * MIN)
    add_click("c36-copy", u[37], "p36-copy", t(36) - 30 * MIN)
    add_checkout("co36", u[36], "p36", t(36), partition=1)
    add_checkout("co36", u[37], "p36-copy", t(36) + MIN, partition=0, delay=2 * SEC, total_amount=1)

    # 38. An amount whose cents do not split evenly: 10.01 over three clicks. position_based:
    # 4.004, 2.002 and 4.004 are 4.00, 2.00 and 4.00, and the cent left over goes to the largest
    # remainder, a tie of the first and last clicks: the earlier, the first.
    add_click("c38-a", u[38], "p38", t(38) - 3 * MIN)
    add_click("c38-b", u[38], "p38", t(38) - 2 * MIN, partition=1)
    add_click("c38-c", u[38], "p38", t(38) - 1 * MIN)
    add_checkout("co38", u[38], "p38", t(38), total_amount="10.01")

    # Bad records of every reason, interleaved with the good ones.
    bad_at = t(3)
    ok_click = click("bad", u[21], "p21", bad_at)
    ok_checkout = checkout("bad", u[21], "p21", bad_at)
    for i, (topic, value, reason) in enumerate(
        bad_records(ok_click, ok_checkout, settings.max_payload_chars, sent_at=bad_at)
    ):
        plan.append(Record(topic, value, i % 2, bad_at, reason))
    # 37. A valid checkout by the bad records' user, on their product: their clicks would qualify,
    # but a rejected click never attributes.
    add_checkout("co37", u[21], "p21", bad_at + MIN)
    # A producer whose clock is two hours ahead stamps its events and their Kafka records alike:
    # the job's own clock rejects them.
    now = datetime.now(UTC).replace(tzinfo=None)
    ahead = now.replace(microsecond=now.microsecond // 1000 * 1000) + 2 * HOUR  # Kafka's milliseconds
    for topic, event in (("clicks", click("bad-host-clock", u[21], "p21", ahead)),
                         ("checkouts", checkout("bad-host-clock", u[21], "p21", ahead))):  # fmt: skip
        plan.append(Record(topic, event, 1, ahead, "datetime_occured_in_future"))

    # A checkout the watermark has passed: late, yet attributed to the click still in state.
    last = max(r.send_at for r in plan if r.valid)
    after_markers = last + MIN + timedelta(seconds=settings.out_of_orderness_seconds) + SEC
    late = [Record("checkouts", checkout("co16-late", u[16], "p16", t(16)), 0, after_markers)]

    plan.sort(key=lambda r: r.send_at)
    users = {u[k]: f"user-{k}" for k in range(1, USERS + 1) if k not in UNKNOWN_USERS}
    first_click = {
        "co1": "c1", "co2": None, "co3": "c3", "co4": None, "co5": "c5-early", "co6": "c6",
        "co7": "c7-earlier", "co8": None, "co9": None, "co10": "c10", "co11": "c11",
        "co12-1": "c12-a", "co12-3": "c12-a", "co12-2": "c12-b", "co13": None, "co14": "c14",
        "co15": "c15-B", "co15-utf8": "c15-\uff21", "co16-late": "c16", "co18": "c18",
        "co25": "c25-early", "co26": "c26-earlier", "co27": "c27-a", "co28": "c28-a", "co28-up": "c28-a",
        "co29": "c29-a", "co30": "c30", "co31": "c31-lower", "co32-1": "c32-a", "co32-2": "c32-a",
        "co34": "c34-a", widest_id("co35-"): widest_id("c35-"), "co36": "c36", "co37": None,
        "co38": "c38-a",
    }  # fmt: skip
    last_click = {
        "co1": "c1", "co2": None, "co3": "c3", "co4": None, "co5": "c5-late", "co6": "c6",
        "co7": "c7-later", "co10": "c10", "co11": "c11", "co12-1": "c12-a", "co12-3": "c12-a",
        "co12-2": "c12-b", "co13": None, "co15": "c15-b", "co15-utf8": "c15-\U0001f600",
        "co16-late": "c16", "co25": "c25-late", "co26": "c26-late", "co27": "c27-d", "co28": "c28-c",
        "co28-up": "c28-c", "co29": "c29-b", "co30": "c30", "co31": "c31-upper", "co32-1": "c32-a",
        "co32-2": "c32-b", "co34": "c34-b", widest_id("co35-"): widest_id("c35-"), "co36": "c36",
        "co37": None, "co38": "c38-c",
    }  # fmt: skip
    linear = {
        "co1": 1, "co2": 0, "co3": 1, "co4": 0, "co5": 3, "co7": 2, "co8": 0, "co10": 1, "co11": 1,
        "co12-1": 1, "co12-3": 1, "co12-2": 1, "co13": 0, "co15": 3, "co15-utf8": 2, "co16-late": 1,
        "co17-bare": 0, "co25": 2, "co26": 2, "co27": 4, "co28": 3, "co28-up": 3, "co29": 2, "co30": 1,
        "co31": 2, "co32-1": 1, "co32-2": 2, "co33": 2, "co34": 2, widest_id("co35-"): 1, "co36": 1,
        "co37": 0, "co38": 3,
    }  # fmt: skip
    credits = {
        "co27": Decimal("2.5"), "co28": Decimal("3.3333333333333"), "co28-up": Decimal("6.6666666666667"),
        "co29": Decimal(checkout("co29", 0, "", t(29))["total_amount"]) / 2, "co33": None,
        "co38": Decimal("3.3366666666667"),
    }  # fmt: skip

    # The credits in cents of the weighted models, by (model, checkout_id, click_id), worked out by
    # hand (time_decay: 2 ^ -(minutes before / 15), whole cents, the rest to the largest remainders).
    def split(
        model: str, checkout_id: str, *credits: str | None
    ) -> dict[tuple[str, str, str], Decimal | None]:
        clicks = "abcd"[: len(credits)]
        prefix = checkout_id.removeprefix("co")
        return {
            (model, checkout_id, f"c{prefix}-{c}"): None if v is None else Decimal(v)
            for c, v in zip(clicks, credits, strict=True)
        }

    click_credits = {
        **split("position_based", "co27", "4.00", "1.00", "1.00", "4.00"),
        **split("position_based", "co28", "4.00", "2.00", "4.00"),
        **split("position_based", "co38", "4.01", "2.00", "4.00"),
        **split("position_based", "co33", None, None),
        **split("time_decay", "co33", None, None),
        # 109.95, 174.54, 277.06 and 438.45 cents: 998 whole, the two left to a and b.
        **split("time_decay", "co27", "1.10", "1.75", "2.77", "4.38"),
        # 318.05, 333.10 and 348.85 cents: 999 whole, the one left to c.
        **split("time_decay", "co28", "3.18", "3.33", "3.49"),
    }
    click_times = {
        ("first_click", "co30"): t(30) - 10 * MIN - 5 * SEC,
        ("last_click", "co30"): t(30) - 10 * MIN,
        ("linear", "co30"): t(30) - 10 * MIN - 5 * SEC,
    }
    # The weighted models credit the same touches as linear.
    answers: dict[str, Mapping[str, object]] = {
        "first_click": first_click,
        "last_click": last_click,
        "linear": linear,
        "position_based": linear,
        "time_decay": linear,
    }
    return Catalogue(plan, late, users, answers, credits, click_credits, click_times)


# The ids of the bad records' events: none may be attributed by any model.
BAD_IDS = frozenset(
    {"bad", "bad-nouser", "bad-fut", "bad-amt", "bad-huge", "bad-neg", "bad-clock", "bad-host-clock"}
)
