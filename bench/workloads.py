"""The benchmark's traffic (--workload): the synthetic, original-traffic and datagen-traffic
events, as a `Workload` that each run stamps with its own ids and times.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import random
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import orjson

from datagen.gen_fake_data import EventGenerator, Pools, TrafficShape, uuid4_text

FORMAT = "%Y-%m-%d %H:%M:%S.%f"
USERS = 5000  # bench users: ids 10_000_001 ..
USER_BASE = 10_000_000


def stamp(moment: datetime) -> str:
    return moment.strftime(FORMAT)[:-3]


# --- workloads ----------------------------------------------------------------------------------
# A workload is generated once, with placeholders for the run's id prefix and for the timestamps,
# and then stamped for each run: a burst at a fixed event time, the latency run at the wall clock
# of each send. Every design and repetition of a benchmark gets the very same records otherwise.
TAG_TEXT, TIME_TEXT = "@@G@@", "@@T@@"
TAG, TIME = TAG_TEXT.encode(), TIME_TEXT.encode()
CHECKOUTS_PER_SECOND = 100.0  # event-time density of every burst: the latency run's traffic, compressed


class Event(NamedTuple):
    due: float  # seconds after the start at which it is sent (in the latency run); < 0: lead-in
    occurred: float  # its datetime_occured, seconds after the start (earlier than `due` if late)
    kind: str  # "clicks" or "checkouts"
    key: bytes  # the Kafka key: the user id, as the generator keys events
    template: bytes  # the JSON value, with TAG in its id and TIME as its datetime_occured
    user: int
    product: str
    checkout: int  # the checkout's number (its id is "<tag>-c<number>"), -1 for a click


@dataclass
class Workload:
    name: str
    events: list[Event]

    @functools.cached_property
    def checkouts(self) -> int:
        return sum(1 for e in self.events if e.checkout >= 0)

    @property
    def lead(self) -> float:
        """Seconds of lead-in before the start: sent, not measured by the latency run."""
        return max(0.0, -self.events[0].due)

    @property
    def end(self) -> float:
        """The latest datetime_occured, seconds after the start."""
        return max(e.occurred for e in self.events)

    def checkout_id(self, tag: str, number: int) -> str:
        return f"{tag}-c{number}"

    def last_checkout_id(self, tag: str) -> str:
        return self.checkout_id(tag, self.checkouts - 1)

    def value(self, event: Event, tag: bytes, moment: datetime) -> bytes:
        return event.template.replace(TAG, tag).replace(TIME, stamp(moment).encode())

    def stamped(self, tag: str, start: datetime) -> list[tuple[str, bytes, bytes]]:
        """(topic kind, key, value) triples with ids `<tag>-...` and event times from `start`:
        serialised up front, so that producing measures producing."""
        t = tag.encode()
        return [(e.kind, e.key, self.value(e, t, start + timedelta(seconds=e.occurred))) for e in self.events]

    def describe(self, window_seconds: int, measured_from: float | None = None) -> dict[str, float]:
        """Its shape, and the join's fan-out: the clicks that qualify for each checkout (same user
        and product, checkout time - window <= click time <= checkout time), over the checkouts
        due from `measured_from` on (all by default)."""
        clicks: dict[tuple[int, str], list[float]] = {}
        for e in self.events:
            if e.checkout < 0:
                clicks.setdefault((e.user, e.product), []).append(e.occurred)
        for times in clicks.values():
            times.sort()
        fanout = sorted(
            bisect.bisect_right(times, e.occurred) - bisect.bisect_left(times, e.occurred - window_seconds)
            for e in self.events
            if e.checkout >= 0 and (measured_from is None or e.due >= measured_from)
            for times in [clicks.get((e.user, e.product), [])]
        )
        sizes: dict[str, list[int]] = {"clicks": [], "checkouts": []}
        example = stamp(datetime(2024, 1, 1)).encode()
        for e in self.events:
            sizes[e.kind].append(len(e.template.replace(TAG, b"b0x123456-cold").replace(TIME, example)))
        n = len(fanout)
        return {
            "events": len(self.events),
            "checkouts": self.checkouts,
            "measured_checkouts": n,
            "clicks_per_checkout": round(len(sizes["clicks"]) / max(self.checkouts, 1), 2),
            "users": len({e.user for e in self.events}),
            "user_products": len({(e.user, e.product) for e in self.events}),
            "click_bytes": round(statistics.mean(sizes["clicks"])) if sizes["clicks"] else 0,
            "checkout_bytes": round(statistics.mean(sizes["checkouts"])) if sizes["checkouts"] else 0,
            "event_time_seconds": round(self.end - min(e.occurred for e in self.events), 1),
            "lead_in_seconds": round(self.lead, 1),
            "fanout_mean": round(statistics.mean(fanout), 2) if fanout else 0.0,
            "fanout_p50": fanout[n // 2] if fanout else 0,
            "fanout_p99": fanout[min(n - 1, n * 99 // 100)] if fanout else 0,
            "fanout_max": fanout[-1] if fanout else 0,
            "attributable_pct": round(100 * sum(1 for f in fanout if f) / max(n, 1), 1),
            # Rows the interval join emits: one per (checkout, qualifying click), one if none.
            "join_rows": sum(max(f, 1) for f in fanout),
        }


def _key(user: int) -> bytes:
    return str(user).encode()


def synthetic_events(_seed: int, rate: float) -> Iterator[Event]:
    """Per checkout, three clicks on the same product in the seconds before it, sent with it."""
    for i in itertools.count():
        user = USER_BASE + 1 + i % USERS
        product = str(i % 500)
        due = i / rate
        for c in range(3):
            click = {
                "click_id": f"{TAG_TEXT}-k{i}-{c}",
                "user_id": user,
                "product_id": product,
                "product": "p",
                "price": 1.5,
                "url": "u",
                "user_agent": "a",
                "ip_address": "1.2.3.4",
                "datetime_occured": TIME_TEXT,
            }
            yield Event(due, due - 3 + c, "clicks", _key(user), json.dumps(click).encode(), user, product, -1)
        checkout = {
            "checkout_id": f"{TAG_TEXT}-c{i}",
            "user_id": user,
            "product_id": product,
            "payment_method": "VISA",
            "total_amount": 10.5,
            "shipping_address": "s",
            "billing_address": "b",
            "user_agent": "a",
            "ip_address": "1.2.3.4",
            "datetime_occured": TIME_TEXT,
        }
        yield Event(due, due, "checkouts", _key(user), json.dumps(checkout).encode(), user, product, i)


@functools.cache
def pools(seed: int) -> Pools:
    """Faker values, as the project's generator draws them (datagen/gen_fake_data.py)."""
    return Pools.build(seed)


# The original generator (beginner_de_project_stream, datagen/gen_fake_data.py): a user out of
# random.randint(1, 100), a click on a new product (uuid4), then `while random.randint(1, 100) >= 50`
# another click on it and a checkout. Every event stamped datetime.now() as it is sent, in order.
ORIGINAL_USERS = 100
ORIGINAL_ANOTHER = 0.51


def original_traffic_events(seed: int, rate: float) -> Iterator[Event]:
    """The original generator's mix and payloads (Faker values: words, URIs, user agents, IPs,
    card providers, addresses), at `rate` checkouts per second of event time, evenly spaced.
    Its users are the bench's (all in commerce.users: the original drops a checkout of an unknown
    user, and then the two designs would not write the same rows)."""
    rng = random.Random(seed)
    values = pools(seed)
    per_session = ORIGINAL_ANOTHER / (1 - ORIGINAL_ANOTHER)  # checkouts, on average
    step = per_session / ((1 + 2 * per_session) * rate)  # event time per event
    n = itertools.count()
    clicks = itertools.count()
    checkouts = itertools.count()

    def pick(pool: tuple[str, ...]) -> str:
        return pool[int(rng.random() * len(pool))]

    def click(user: int, product: str) -> Event:
        body = {
            "click_id": f"{TAG_TEXT}-k{next(clicks)}",
            "user_id": user,
            "product_id": product,
            "product": pick(values.words),
            "price": round(rng.uniform(0.01, 99.99), 2),
            "url": pick(values.urls),
            "user_agent": pick(values.user_agents),
            "ip_address": pick(values.ips),
            "datetime_occured": TIME_TEXT,
        }
        at = next(n) * step
        return Event(at, at, "clicks", _key(user), json.dumps(body).encode(), user, product, -1)

    def checkout(user: int, product: str) -> Event:
        number = next(checkouts)
        body = {
            "checkout_id": f"{TAG_TEXT}-c{number}",
            "user_id": user,
            "product_id": product,
            "payment_method": pick(values.payment_methods),
            "total_amount": round(rng.uniform(0.01, 999.99), 2),
            "shipping_address": pick(values.addresses),
            "billing_address": pick(values.addresses),
            "user_agent": pick(values.user_agents),
            "ip_address": pick(values.ips),
            "datetime_occured": TIME_TEXT,
        }
        at = next(n) * step
        return Event(at, at, "checkouts", _key(user), json.dumps(body).encode(), user, product, number)

    while True:
        user = USER_BASE + rng.randint(1, ORIGINAL_USERS)
        product = uuid4_text(rng.getrandbits(128))
        yield click(user, product)
        while rng.random() < ORIGINAL_ANOTHER:
            yield click(user, product)
            yield checkout(user, product)


# This project's generator, with the delays of `make datagen` (checkouts up to 60 s after the
# clicks) and every user known. Its clock starts PREROLL_SECONDS before the first event kept, so
# that the rate of checkouts is steady from the first event; the next LEAD_IN_SECONDS are sent but
# not measured by the latency run, as the checkouts of sessions begun in the pre-roll have lost
# their clicks (a session lasts up to 2 minutes, 4 with a repeat purchase).
DATAGEN_SHAPE = TrafficShape(max_checkout_delay_seconds=60.0, unknown_user_probability=0.0)
PREROLL_SECONDS = 180.0
LEAD_IN_SECONDS = 120.0


def _datagen_stream(seed: int, events_per_second: float) -> Iterator[tuple[float, float, str, dict]]:
    """(due, occurred, kind, event) from the lead-in on, seconds from its end."""
    generator = EventGenerator(seed, DATAGEN_SHAPE, pools(seed))
    origin = datetime(2024, 1, 1)
    zero = PREROLL_SECONDS + LEAD_IN_SECONDS
    for i in itertools.count():
        now = i / events_per_second
        kind, event = generator.next_event(origin + timedelta(seconds=now))
        if now >= PREROLL_SECONDS:
            occurred = (datetime.fromisoformat(event["datetime_occured"]) - origin).total_seconds()
            yield now - zero, occurred - zero, kind, event


def datagen_traffic_events(seed: int, rate: float) -> Iterator[Event]:
    """The project's generator at `rate` checkouts per second of event time: the share of
    checkouts among its events, measured on a sample, sets its events per second."""
    sample = [kind for _, _, kind, _ in itertools.islice(_datagen_stream(seed, 200.0), 20_000)]
    share = sample.count("checkouts") / len(sample)
    clicks = itertools.count()
    checkouts = itertools.count()
    for due, occurred, kind, event in _datagen_stream(seed, rate / share):
        user = USER_BASE + int(event["user_id"])
        number = -1
        if kind == "checkouts":
            number = next(checkouts)
            event["checkout_id"] = f"{TAG_TEXT}-c{number}"
        else:
            event["click_id"] = f"{TAG_TEXT}-k{next(clicks)}"
        event["user_id"] = user
        event["datetime_occured"] = TIME_TEXT
        yield Event(due, occurred, kind, _key(user), orjson.dumps(event), user, event["product_id"], number)


WORKLOADS: dict[str, Callable[[int, float], Iterator[Event]]] = {
    "synthetic": synthetic_events,
    "original-traffic": original_traffic_events,
    "datagen-traffic": datagen_traffic_events,
}


def build_workload(
    name: str, seed: int, rate: float, events: int | None = None, seconds: float | None = None
) -> Workload:
    """The first `events` events of a workload, or those due in its first `seconds`."""
    stream = WORKLOADS[name](seed, rate)
    if events is not None:
        chosen = list(itertools.islice(stream, events))
    else:
        assert seconds is not None
        chosen = list(itertools.takewhile(lambda e: e.due < seconds, stream))
    workload = Workload(name, chosen)
    if workload.checkouts == 0:
        raise SystemExit(f"error: the {name} workload has no checkout at this size; send more events")
    return workload
