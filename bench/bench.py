"""Benchmarks of the embedded stack (`make bench`): generator, pass-through, and the job against the
original design it replaces (burst throughput, latency), each repeated; prints medians, ratios and
whether the targets are met, and saves JSON under STACK_DIR/bench/. Not a test: it measures, it
does not assert.

  generator    events/s from one process into the broker (pre-serialised events, one producer)
  datagen      the real generator (datagen/gen_fake_data.py), unthrottled and held to 5,000/s
  passthrough  a burst read, parsed and validated by a job that writes valid records to a
               blackhole sink and rejected ones to dead_letters, as the job does; from the first
               send until end markers sent last on every partition are visible in dead_letters
  burst        N events produced as fast as possible, from the first send to the last checkout
               row visible in Postgres
  latency      100 checkouts/s (and their clicks) in real time for a while; produce -> row
               visible, for attributed checkouts (updated_at minus the time the checkout was sent)

Burst and latency run two designs on the same events: "job", this project's job as `make job`
runs it (ATTRIBUTION_MODELS=first_click), and "original", the original project's SQL ported to
Flink 2.0 with the minimum fixes (bench/original/, its README lists them), writing to
commerce.original_attributed_checkouts. They alternate in the same run (original, job; job,
original; ...), so that drift of the machine hits both alike, and the ratio job/original of each
adjacent pair is reported, with the issue's targets: burst throughput >= 1.5x the original's, p99
latency <= 0.33x the original's and <= 0.5 s. `--only burst-job` (or burst-original, ...) runs one
design only. A third design, "models" (the job with every attribution model in one statement set;
its runs end when the first_click table is complete), runs only when asked for (`--only
burst-models`, `--only latency-models`), last in each repetition, and is reported as models/job:
the garbage its larger state leaves in the TaskManager would otherwise fall on the pairs.

Workloads (--workload; default original-traffic and synthetic), each at 100 checkouts per second of
event time:
  synthetic         3 clicks 1-3 s before each checkout; users cycle over 5,000 ids and products
                    over 500, so a checkout finds ~16 qualifying clicks (repeat purchases)
  original-traffic  the original project's generator: 100 users, a new product per session, one
                    click, then while a coin (51 %) says so another click and a checkout; Faker
                    values (user agents, URLs, addresses) as its payloads carry
  datagen-traffic   this project's generator (TrafficShape: 1,000 users, 200 products, sessions of
                    1-3 clicks, checkouts up to 60 s later, orphan, stale and repeat purchases,
                    timestamps up to 5 s out of order), in steady state; its first 2 minutes are
                    a lead-in, sent but not measured by the latency run (which lasts 2 min more)
Each workload's join fan-out (qualifying clicks per checkout) is printed and saved.

Each burst and pass-through run submits its own job on fresh topics, on the running stack
(`make up`; started if absent), and sends it two bursts: "cold", right after submission, while the
JVM is still compiling the job's generated code, and "warm", once event time has passed all of the
first burst, its state is gone and the TaskManager is idle: the throughput of a running job.
`--bursts N` sends N - 2 more warm bursts the same way and reports the last one too ("last burst"):
how the job warms up, since each new job recompiles its operators' hot code.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import itertools
import json
import math
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
import orjson
import psutil
import psycopg2
from kafka import KafkaProducer

from attribution import job, provision, sql, stack, supervision
from attribution.config import ATTRIBUTION_MODELS, Settings, schema_of, settings_or_exit
from datagen.gen_fake_data import EventGenerator, Pools, TrafficShape, uuid4_text
from datagen.gen_fake_data import Producer as GeneratorProducer

FORMAT = "%Y-%m-%d %H:%M:%S.%f"
USERS = 5000  # bench users: ids 10_000_001 ..
USER_BASE = 10_000_000

# Targets of issue 13, judged on the medians of the per-pair ratios job / original.
TARGET_BURST_RATIO = 1.5  # warm burst throughput, at least this times the original's
TARGET_P99_RATIO = 0.33  # p99 latency at 100 checkouts/s, at most this times the original's
TARGET_P99_SECONDS = 0.5  # and at most this


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


class Sender:
    """One long-lived, batching producer: the generator's (confluent-kafka) or, for comparison,
    kafka-python with the same batching."""

    def __init__(self, settings: Settings, client: str = "confluent") -> None:
        self.client = client
        self._confluent: GeneratorProducer | None = None
        self._kafka: KafkaProducer | None = None
        if client == "confluent":
            self._confluent = GeneratorProducer(settings)
        else:
            self._kafka = KafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                acks=1,
                linger_ms=20,
                batch_size=512 * 1024,
            )

    def send(self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
        if self._confluent is not None:
            self._confluent.send_raw(topic, value, key, partition)
        elif self._kafka is not None:
            self._kafka.send(topic, key=key, value=value, partition=partition)

    def flush(self) -> None:
        if self._confluent is not None:
            self._confluent.producer.flush()
        elif self._kafka is not None:
            self._kafka.flush()

    def close(self) -> None:
        # Both flush first.
        if self._confluent is not None:
            self._confluent.close()
        elif self._kafka is not None:
            self._kafka.close()


def produce(
    settings: Settings,
    events: list[tuple[str, bytes, bytes]],
    topics: dict[str, str],
    client: str = "confluent",
) -> float:
    """Sends everything as fast as possible; returns seconds until all are acknowledged."""
    p = Sender(settings, client)
    began = time.perf_counter()
    for kind, key, value in events:
        p.send(topics[kind], value, key)
    p.flush()
    elapsed = time.perf_counter() - began
    p.close()
    return elapsed


def to_every_partition(settings: Settings, topics: dict[str, str], value: Callable[[str], bytes]) -> int:
    """One record on every partition of the topics, `value(kind)` for each; returns how many."""
    p = Sender(settings)
    for kind, name in topics.items():
        for partition in range(settings.topic_partitions):
            p.send(name, value(kind), partition=partition)
    p.close()
    return len(topics) * settings.topic_partitions


def advance(settings: Settings, topics: dict[str, str], to: datetime, tag: str) -> None:
    """A click and a checkout stamped `to` on every partition, so event time passes everything.
    Valid JSON (the original design fails on anything else); ids `<tag>-wm-...`, deleted with the
    run's rows."""

    def marker(kind: str) -> bytes:
        id_field = "click_id" if kind == "clicks" else "checkout_id"
        body = {"user_id": 1, "product_id": "wm", "datetime_occured": stamp(to)}
        body[id_field] = f"{tag}-wm-{uuid.uuid4()}"
        return json.dumps(body).encode()

    to_every_partition(settings, topics, marker)


class ResourceSampler:
    """CPU (mean %, of one core) and peak RSS of each stack service (the process and all its
    descendants, looked up at every sample, as Postgres forks a backend per connection) and of
    this process."""

    def __init__(self, settings: Settings) -> None:
        self.groups = {name: pid for name, _, pid, _ in stack.status(settings) if pid}
        self.cpu: dict[str, list[float]] = {n: [] for n in [*self.groups, "bench (producer)"]}
        self.rss: dict[str, float] = dict.fromkeys(self.cpu, 0.0)
        self._known: dict[int, psutil.Process] = {}  # cpu_percent() needs the same object each time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _members(self) -> dict[str, list[psutil.Process]]:
        members: dict[str, list[psutil.Process]] = {
            "bench (producer)": [self._known.setdefault(os.getpid(), psutil.Process())]
        }
        for name, pid in self.groups.items():
            try:
                root = self._known.setdefault(pid, psutil.Process(pid))
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                family = []
            members[name] = [self._known.setdefault(p.pid, p) for p in family]
        return members

    def _run(self) -> None:
        for group in self._members().values():
            for p in group:
                _safe(p.cpu_percent)
        while not self._stop.wait(0.5):
            self._sample()

    def _sample(self) -> None:
        for name, group in self._members().items():
            self.cpu[name].append(sum(_safe(p.cpu_percent) or 0.0 for p in group))
            rss = sum(_safe(functools.partial(_rss, p)) or 0.0 for p in group) / 2**20
            self.rss[name] = max(self.rss[name], rss)

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # a run shorter than the sampling interval still gets one sample

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            n: {"cpu_pct": round(statistics.mean(v), 1) if v else 0.0, "peak_rss_mib": round(self.rss[n])}
            for n, v in self.cpu.items()
        }


class TaskManagerThreads:
    """CPU seconds of the TaskManager's threads between two readings, by kind: Flink's task threads
    by name (e.g. "IntervalJoin[N]"; Linux keeps 15 characters), the JIT compiler and the garbage
    collector. Where a burst's CPU goes, without a profiler."""

    KINDS = (
        ("JIT compiler", re.compile(r"Compiler")),
        ("garbage collector", re.compile(r"^(GC |G1 |VM Thread)")),
    )

    def __init__(self, settings: Settings) -> None:
        self.task_dir = Path(f"/proc/{supervision.running_pid(settings, 'taskmanager')}/task")
        self.ticks = os.sysconf("SC_CLK_TCK")
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        if not self.task_dir.is_dir():
            return seconds  # no /proc (not Linux): no breakdown
        for task in self.task_dir.iterdir():
            try:
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended
            key = f"{task.name} {name}"
            seconds[key] = (int(fields[11]) + int(fields[12])) / self.ticks  # utime + stime
        return seconds

    def us_per_event(self, events: int) -> dict[str, float]:
        """Since construction: µs of CPU per event by kind of thread, largest first."""
        by_kind: dict[str, float] = {}
        for key, value in self._read().items():
            name = key.split(" ", 1)[1]
            kind = next((k for k, pattern in self.KINDS if pattern.search(name)), re.sub(r"\d+", "N", name))
            by_kind[kind] = by_kind.get(kind, 0.0) + value - self._start.get(key, 0.0)
        ranked = sorted(by_kind.items(), key=lambda kv: -kv[1])
        return {kind: round(sec / events * 1e6, 2) for kind, sec in ranked if sec / events * 1e6 >= 0.1}


def _rss(process: psutil.Process) -> float:
    return float(process.memory_info().rss)


def _safe(call: Callable[[], float]) -> float | None:
    try:
        return call()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


# --- the designs under test -----------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    name: str
    templates: tuple[str, ...]  # the driver's --insert-template arguments; () runs the job's outputs
    sink_vertex: str  # part of the name of the job vertex that writes the rows (settle())
    sink_table: str | None = None  # its Postgres table (in SINK_TABLE's schema), if not SINK_TABLE
    models: str = "first_click"  # ATTRIBUTION_MODELS of the job (rows are counted in SINK_TABLE)


ORIGINAL_TEMPLATES = tuple(
    f"bench/original/{path}"
    for path in (
        "source/clicks.sql",
        "source/checkouts.sql",
        "source/users.sql",
        "sink/attributed_checkouts.sql",
        "process/attribute_checkouts.sql",
    )
)
DESIGNS = {
    "job": Design("job", (), "Sink: attributed_checkouts"),
    # The job with every attribution model in one statement set (#14).
    "models": Design("models", (), "Sink: attributed_checkouts", models=",".join(ATTRIBUTION_MODELS)),
    "original": Design(
        "original", ORIGINAL_TEMPLATES, "original_attributed_checkouts", "original_attributed_checkouts"
    ),
}
PASSTHROUGH = Design("passthrough", ("process/passthrough_benchmark.sql", "process/dead_letters.sql"), "")


def design_settings(settings: Settings, design: Design) -> Settings:
    """The settings a design's job is rendered with: SINK_TABLE is its result table."""
    settings = replace(settings, attribution_models=design.models)
    if design.sink_table is None:
        return settings
    return replace(settings, sink_table=f"{schema_of(settings.sink_table)}.{design.sink_table}")


def check_original_templates(settings: Settings) -> None:
    """The driver renders --insert-template paths with attribution/sql.py: stop before anything
    runs if it cannot load the original design's templates (bench/original/...)."""
    original = design_settings(settings, DESIGNS["original"])
    try:
        for template in ORIGINAL_TEMPLATES:
            sql.render(template, original)
    except jinja2.TemplateNotFound as error:
        raise SystemExit(
            f"error: the driver cannot load the original design's template {error.name!r}: "
            "attribution/sql.py must load templates from the project root as well as from code/ "
            "(docs/benchmarks.md, 'Against the original design'). "
            "`--only burst-job --only latency-job` measures the job alone."
        ) from None


def create_original_table(settings: Settings) -> None:
    """The original design's result table, with the original's columns, plus `updated_at`, the
    time of the row's last write, as the job's table has it: the bench reads the end of a run and
    each row's latency from it. postgres/init.sql does not create it: it is the bench's."""
    table = design_settings(settings, DESIGNS["original"]).sink_table
    schema = schema_of(table)
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {table} (
                checkout_id VARCHAR PRIMARY KEY,
                user_name VARCHAR,
                click_id VARCHAR,
                product_id VARCHAR,
                payment_method VARCHAR,
                total_amount DECIMAL(5, 2),
                shipping_address VARCHAR,
                billing_address VARCHAR,
                user_agent VARCHAR,
                ip_address VARCHAR,
                checkout_time TIMESTAMP,
                click_time TIMESTAMP,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
            );
            CREATE OR REPLACE FUNCTION {schema}.bench_touch_updated_at() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                NEW.updated_at := clock_timestamp();
                RETURN NEW;
            END
            $$;
            CREATE OR REPLACE TRIGGER bench_touch_updated_at
                BEFORE UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {schema}.bench_touch_updated_at();
            """
        )
    conn.close()


BENCH_JOB_PREFIX = "bench-"  # every benchmark job's name is this and its tag


def bench_topics(tag: str) -> dict[str, str]:
    """The topics of the benchmark job with this tag."""
    return {"clicks": f"bench-clicks-{tag}", "checkouts": f"bench-checkouts-{tag}"}


class BenchJob:
    """A design's job on fresh topics. Its rows carry ids `<data_tag>-...`, deleted on cancel."""

    def __init__(self, settings: Settings, name: str, design: Design, data_tag: str) -> None:
        tag = f"{name}-{uuid.uuid4().hex[:6]}"
        self.tag = tag
        self.data_tag = data_tag
        self.topics = bench_topics(tag)
        self.settings = replace(
            design_settings(settings, design),
            clicks_topic=self.topics["clicks"],
            checkouts_topic=self.topics["checkouts"],
            job_name=f"{BENCH_JOB_PREFIX}{tag}",
            consumer_group_id=f"{BENCH_JOB_PREFIX}{tag}",
        )
        provision.create_topics(self.settings, list(self.topics.values()))
        try:
            self.job_id = job.submit(self.settings, insert_templates=design.templates)
            job.wait_until_running(self.settings, self.job_id)
        except BaseException:
            provision.delete_topics(self.settings, list(self.topics.values()))
            raise

    def cancel(self) -> None:
        job.cancel(self.settings, self.job_id)
        provision.delete_topics(self.settings, list(self.topics.values()))
        # Its rows are of no further use; left, they would slow every later run's row counts.
        with psycopg2.connect(self.settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            for model in self.settings.models:
                # linear's result is a view of the table the job writes
                table = (
                    self.settings.linear_clicks_table
                    if model == "linear"
                    else self.settings.model_tables[model]
                )
                cur.execute(f"DELETE FROM {table} WHERE checkout_id LIKE %s", (self.data_tag + "-%",))
            cur.execute(
                f"DELETE FROM {self.settings.dead_letter_table} WHERE source_topic = ANY(%s)",
                (list(self.topics.values()),),
            )
        conn.close()


def cancel_leftovers(settings: Settings) -> None:
    """Jobs and topics of a benchmark that was killed outright (SIGKILL, a lost terminal): they
    would take CPU from every run of this one."""
    for leftover in job.active_jobs(settings):
        if leftover.name.startswith(BENCH_JOB_PREFIX):
            print(f"cancelling {leftover.name}, left running by an interrupted benchmark", flush=True)
            job.cancel(settings, leftover.job_id)
            tag = leftover.name.removeprefix(BENCH_JOB_PREFIX)
            provision.delete_topics(settings, list(bench_topics(tag).values()))


class Rows:
    """Watches the result tables over one connection. Polling must not load Postgres: a LIKE count
    is a sequential scan of the whole table, which every 50 ms took CPU from the job it measured.
    When a run is complete, the time its last row was written is read from the row itself
    (`updated_at`, `written_at`: clock_timestamp() at the write), so polling adds no error."""

    def __init__(self, settings: Settings) -> None:
        self.table = settings.sink_table
        self.dead_letters = settings.dead_letter_table
        self.conn = psycopg2.connect(settings.psycopg_dsn())
        self.conn.autocommit = True

    def _one(self, sql: str, *args: object) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
            assert row is not None  # an aggregate returns one row
            return row[0]

    def exists(self, checkout_id: str) -> bool:  # a primary-key lookup
        return bool(self._one(f"SELECT count(*) FROM {self.table} WHERE checkout_id = %s", checkout_id))

    def count(self, prefix: str) -> int:
        return self._one(f"SELECT count(*) FROM {self.table} WHERE checkout_id LIKE %s", prefix + "%")

    def wait_for_dead_letters(self, topics: list[str], payload: str, n: int, timeout: float = 600) -> float:
        """Until `n` dead letters from these topics carry this payload; when the last was written."""
        where = f"FROM {self.dead_letters} WHERE source_topic = ANY(%s) AND payload = %s"
        wait(lambda: self._one(f"SELECT count(*) {where}", topics, payload) >= n, timeout)
        return float(self._one(f"SELECT extract(epoch FROM max(written_at)) {where}", topics, payload))

    def wait_for(self, prefix: str, n: int, last_id: str, timeout: float = 600) -> float:
        """Until `n` rows with the prefix exist (cheap polls for the last one first, then counts);
        returns when the last of them was written (epoch seconds)."""
        wait(lambda: self.exists(last_id), timeout)
        wait(lambda: self.count(prefix) >= n, timeout, interval=0.25)
        where = f"FROM {self.table} WHERE checkout_id LIKE %s"
        return float(self._one(f"SELECT extract(epoch FROM max(updated_at)) {where}", prefix + "%"))

    def close(self) -> None:
        self.conn.close()


def wait(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark run did not complete")
        time.sleep(interval)


@contextlib.contextmanager
def fresh_topics(settings: Settings, names: list[str]) -> Iterator[None]:
    """Topics for one run, deleted afterwards: the embedded broker keeps every topic in memory."""
    provision.create_topics(settings, names)
    try:
        yield
    finally:
        provision.delete_topics(settings, names)


def run_generator(settings: Settings, events: int) -> dict:
    """Both clients on the same pre-serialised events, one after the other."""
    result: dict = {}
    data = build_workload("synthetic", 0, CHECKOUTS_PER_SECOND, events=events).stamped(
        "gen", datetime(2024, 1, 1)
    )
    for client in ("kafka-python", "confluent"):
        topics = {kind: f"bench-gen-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("clicks", "checkouts")}
        with fresh_topics(settings, list(topics.values())), ResourceSampler(settings) as sampler:
            seconds = produce(settings, data, topics, client)
        result[f"{client}_events_per_s"] = round(len(data) / seconds)
        result["resources"] = sampler.summary()
    return result


def _datagen(settings: Settings, *args: str) -> tuple[int, float]:
    """Runs the real generator (datagen/gen_fake_data.py) on fresh topics; (events, seconds)."""
    tag = uuid.uuid4().hex[:6]
    topics = {"CLICKS_TOPIC": f"bench-dg-clicks-{tag}", "CHECKOUTS_TOPIC": f"bench-dg-checkouts-{tag}"}
    with fresh_topics(settings, list(topics.values())):
        done = subprocess.run(
            [sys.executable, "datagen/gen_fake_data.py", "--no-users", *args],
            env={**os.environ, **topics},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    match = re.search(r"done: (\d+) events in ([\d.]+)s", done)
    if match is None:
        raise RuntimeError(f"unexpected generator output: {done[-500:]}")
    return int(match[1]), float(match[2])


def run_datagen(settings: Settings, events: int) -> dict:
    """The generator itself: unthrottled, and held to 5,000 events/s for 10 s."""
    sent, seconds = _datagen(settings, "--as-fast-as-possible", "--count", str(events))
    requested = 5000
    limited, limited_seconds = _datagen(settings, "--rate", str(requested), "--count", str(10 * requested))
    achieved = limited / limited_seconds
    return {
        "events_per_s": round(sent / seconds),
        "rate_5000_achieved": round(achieved),
        "rate_error_pct": round(100 * abs(achieved - requested) / requested, 2),
    }


def end_markers(settings: Settings, topics: dict[str, str], marker: str) -> int:
    """A record that is not JSON on every partition, sent after the data: once all of them are in
    dead_letters, every record before them has been read and parsed. Returns how many were sent."""
    return to_every_partition(settings, topics, lambda _kind: marker.encode())


def settle(
    settings: Settings, job_id: str, watermark: datetime, sink_vertex: str, timeout: float = 120
) -> None:
    """Until the join has processed `watermark` and fired the timers that clean up the state before
    it, so that a following burst does not pay for that. The join emits a watermark after its
    timers, held back by the attribution window: the sink sees `watermark` minus the window."""
    seen = watermark - timedelta(seconds=settings.attribution_window_seconds)
    # Event times travel in whole milliseconds: a workload ending mid-millisecond stops short of it.
    target = math.floor(seen.replace(tzinfo=UTC).timestamp() * 1000)
    wait(lambda: job.vertex_watermark(settings, job_id, sink_vertex) >= target, timeout)


def wait_for_idle(settings: Settings, below_pct: float = 10.0, timeout: float = 60) -> None:
    """Until the TaskManager uses less than `below_pct` of a core for a second: the JIT compiler
    has finished with the job's code and nothing of the previous burst is still in flight."""
    tm = psutil.Process(supervision.running_pid(settings, "taskmanager"))
    family = [tm, *tm.children(recursive=True)]
    deadline = time.monotonic() + timeout
    for p in family:
        p.cpu_percent()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if sum(_safe(p.cpu_percent) or 0.0 for p in family) < below_pct:
            return
    print(f"(the TaskManager was still busy after {timeout:.0f}s; measuring anyway)", flush=True)


PHASES = (("cold", datetime(2024, 1, 1)), ("warm", datetime(2024, 1, 1, 6)))


def phases(bursts: int) -> list[tuple[str, datetime]]:
    """cold, warm, then burst3, burst4, ...: each burst's event time 6 hours after the last's."""
    names = [name for name, _ in PHASES] + [f"burst{n}" for n in range(len(PHASES) + 1, bursts + 1)]
    return [(name, PHASES[0][1] + timedelta(hours=6 * i)) for i, name in enumerate(names)]


def run_burst(settings: Settings, design: Design, load: Workload, data_tag: str, bursts: int = 2) -> dict:
    """A cold and a warm burst (see the module's doc), and with bursts > 2 more warm ones, on one
    new job of the design; with more than two, `last_events_per_s` is the last one's."""
    passthrough = design is PASSTHROUGH
    bench = BenchJob(settings, "pass" if passthrough else f"burst-{design.name}", design, data_tag)
    rows = Rows(bench.settings)
    result: dict = {"events": len(load.events), "checkouts": load.checkouts}
    schedule = phases(bursts)
    try:
        for phase, start in schedule:
            tag = f"{data_tag}-{phase}"
            data = load.stamped(tag, start)
            # Event time after the burst passes its clicks' hour: the join's state of this burst
            # is cleaned before the next one starts.
            after = start + timedelta(seconds=load.end) + timedelta(hours=2)
            threads = TaskManagerThreads(settings)
            with ResourceSampler(settings) as sampler:
                began = time.time()  # the clock Postgres stamps rows with: the same host's
                produce(settings, data, bench.topics)
                if passthrough:
                    sent = end_markers(settings, bench.topics, f"end-{tag}")
                    done = rows.wait_for_dead_letters(list(bench.topics.values()), f"end-{tag}", sent)
                else:
                    advance(settings, bench.topics, after, tag)
                    done = rows.wait_for(f"{tag}-c", load.checkouts, load.last_checkout_id(tag))
                seconds = done - began
            result[f"{phase}_seconds"] = round(seconds, 2)
            result[f"{phase}_events_per_s"] = round(len(data) / seconds)
            result["resources"] = sampler.summary()  # the last burst's
            result["taskmanager_us_per_event"] = threads.us_per_event(len(data))  # the last burst's too
            del data
            if phase != schedule[-1][0]:
                if not passthrough:
                    watermark = after - timedelta(seconds=settings.out_of_orderness_seconds)
                    settle(bench.settings, bench.job_id, watermark, design.sink_vertex)
                wait_for_idle(settings)
        if bursts > len(PHASES):
            result["last_events_per_s"] = result[f"{schedule[-1][0]}_events_per_s"]
        return result
    finally:
        rows.close()
        bench.cancel()


def run_latency(settings: Settings, design: Design, load: Workload, data_tag: str) -> dict:
    """The workload in real time: each event sent when due, stamped with the wall clock (minus its
    lateness in the workload); per attributed checkout, the last write of its row minus its send.
    Checkouts of the lead-in (due before 0) are sent, not measured."""
    bench = BenchJob(settings, f"latency-{design.name}", design, data_tag)
    tag = data_tag.encode()
    try:
        p = Sender(settings)
        sent_at: dict[str, float] = {}
        with ResourceSampler(settings) as sampler:
            zero = time.monotonic() + load.lead
            for e in load.events:
                if (ahead := zero + e.due - time.monotonic()) > 0:
                    time.sleep(ahead)
                now = datetime.now(UTC).replace(tzinfo=None)
                p.send(
                    bench.topics[e.kind],
                    load.value(e, tag, now - timedelta(seconds=e.due - e.occurred)),
                    e.key,
                )
                if e.checkout >= 0 and e.due >= 0:
                    sent_at[load.checkout_id(data_tag, e.checkout)] = time.time()
            p.flush()
            sending = time.monotonic() - zero
            # Event time past everything: checkouts without a click are written too, and the run
            # ends when every checkout has its row (only attributed ones are measured).
            advance(
                settings, bench.topics, datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=2), data_tag
            )
            rows = Rows(bench.settings)
            try:
                rows.wait_for(f"{data_tag}-c", load.checkouts, load.last_checkout_id(data_tag), timeout=120)
            finally:
                rows.close()
        p.close()
        with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT checkout_id, extract(epoch FROM updated_at) FROM {bench.settings.sink_table} "
                "WHERE checkout_id LIKE %s AND click_id IS NOT NULL",
                (f"{data_tag}-c%",),
            )
            latencies = sorted(float(at) - sent_at[cid] for cid, at in cur.fetchall() if cid in sent_at)
        conn.close()
        if len(latencies) < 2:
            raise RuntimeError(
                f"only {len(latencies)} attributed checkouts: run the latency benchmark longer"
            )
        q = statistics.quantiles(latencies, n=100)
        return {
            "checkouts": len(sent_at),
            "checkouts_per_s": round(len(sent_at) / sending, 1),
            "attributed": len(latencies),
            "p50_s": round(q[49], 3),
            "p95_s": round(q[94], 3),
            "p99_s": round(q[98], 3),
            "max_s": round(latencies[-1], 3),
            "resources": sampler.summary(),
        }
    finally:
        bench.cancel()


def figures(result: dict) -> dict[str, float]:
    """The numbers of a run's result (not the per-process and per-thread breakdowns)."""
    return {k: v for k, v in result.items() if isinstance(v, int | float)}


def machine(settings: Settings) -> dict[str, Any]:
    """What the figures were measured on: they move by 2x between days and machines."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "parallelism": settings.parallelism,
        "state_backend": settings.state_backend,
    }


def describe_machine(m: dict[str, Any]) -> str:
    end = f", {m['load_average_at_end']} at the end" if "load_average_at_end" in m else ""
    return (
        f"{m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB; {m['date']}; "
        f"load average {m['load_average_at_start']} at the start{end}"
    )


# --- what runs, in what order ---------------------------------------------------------------------
BENCHMARKS = ("generator", "datagen", "passthrough", "burst", "latency")
PAIRED = ("burst", "latency")  # run for each design, alternating
COMPARED_DESIGNS = ("job", "original")  # what "burst" and "latency" run; "models" only when named
ONLY = [*BENCHMARKS, *(f"{b}-{d}" for b in PAIRED for d in DESIGNS)]


def selection(only: list[str] | None) -> dict[str, list[str]]:
    """Benchmark -> designs to run ([""] for the others): "burst" is every design, "burst-job" one."""
    chosen: dict[str, list[str]] = {}
    for choice in only or BENCHMARKS:
        name, _, design = choice.partition("-")
        designs = ([design] if design else list(COMPARED_DESIGNS)) if name in PAIRED else [""]
        chosen[name] = [*chosen.get(name, []), *(d for d in designs if d not in chosen.get(name, []))]
    # The original first: the order of a pair is reversed every other repetition anyway.
    return {name: sorted(chosen[name], reverse=True) for name in BENCHMARKS if name in chosen}


def alternate(designs: list[str], repetition: int) -> list[str]:
    """original, job | job, original | original, job ...: a drift in time hits both alike. The
    models design comes last in each repetition, so that the pair compared runs side by side and
    the garbage its larger state leaves behind falls on both designs of the pair alike."""
    pair = [d for d in designs if d != "models"]
    return (pair if repetition % 2 == 0 else pair[::-1]) + [d for d in designs if d == "models"]


COMPARED = {
    "burst": (
        ("warm_events_per_s", "warm burst, events/s"),
        ("cold_events_per_s", "cold burst, events/s"),
        ("last_events_per_s", "last burst, events/s"),
    ),
    "latency": (("p99_s", "p99 latency, s"), ("p95_s", "p95 latency, s"), ("p50_s", "p50 latency, s")),
}


def compare(pairs: dict[str, dict[str, dict[int, dict]]], latency_rate: float) -> dict[str, dict]:
    """Per benchmark and workload: each design's median, and the ratio job/original as the median
    of the ratios of the pairs that ran next to each other; then the targets."""
    out: dict[str, dict] = {}
    for key, by_design in pairs.items():
        name = key.split("/", 1)[0]
        entry: dict[str, Any] = {}
        for metric, _ in COMPARED[name]:
            if not all(metric in r for runs in by_design.values() for r in runs.values()):
                continue  # last_events_per_s: only with --bursts > 2
            medians = {
                d: statistics.median(r[metric] for r in runs.values())
                for d, runs in by_design.items()
                if runs
            }
            both = sorted(by_design.get("job", {}).keys() & by_design.get("original", {}).keys())
            ratios = [
                round(by_design["job"][r][metric] / by_design["original"][r][metric], 3)
                for r in both
                if by_design["original"][r][metric]
            ]
            # Every model in one job against first_click alone, paired the same way.
            with_models = sorted(by_design.get("job", {}).keys() & by_design.get("models", {}).keys())
            models_ratios = [
                round(by_design["models"][r][metric] / by_design["job"][r][metric], 3)
                for r in with_models
                if by_design["job"][r][metric]
            ]
            entry[metric] = {
                **medians,
                "ratio": round(statistics.median(ratios), 3) if ratios else None,
                "pair_ratios": ratios,
                "models_ratio": round(statistics.median(models_ratios), 3) if models_ratios else None,
            }
        targets: list[dict[str, Any]] = []
        if name == "burst" and entry["warm_events_per_s"]["ratio"] is not None:
            ratio = entry["warm_events_per_s"]["ratio"]
            targets.append(
                {
                    "target": f"warm burst throughput >= {TARGET_BURST_RATIO}x the original's",
                    "value": ratio,
                    "met": ratio >= TARGET_BURST_RATIO,
                }
            )
        if name == "latency":
            at = (
                ""
                if latency_rate == 100
                else f" (measured at {latency_rate:g} checkouts/s; the target is at 100)"
            )
            ratio = entry["p99_s"]["ratio"]
            if ratio is not None:
                targets.append(
                    {
                        "target": f"p99 latency <= {TARGET_P99_RATIO}x the original's{at}",
                        "value": ratio,
                        "met": ratio <= TARGET_P99_RATIO,
                    }
                )
            if "job" in entry["p99_s"]:
                p99 = entry["p99_s"]["job"]
                targets.append(
                    {
                        "target": f"p99 latency <= {TARGET_P99_SECONDS} s{at}",
                        "value": p99,
                        "met": p99 <= TARGET_P99_SECONDS,
                    }
                )
        entry["targets"] = targets
        out[key] = entry
    return out


def _number(value: float) -> str:
    """Events/s as a whole number with separators, seconds with three decimals."""
    return f"{round(value):,}" if value >= 100 else f"{value:.3f}"


def print_comparison(
    comparison: dict[str, dict], workloads: dict[str, dict], machine_info: dict[str, Any]
) -> None:
    print("\nThe job against the original design (bench/original/): same stack, same run, same events")
    print(f"  measured on: {describe_machine(machine_info)}")
    print("  ratio = job / original: the median of the ratios of the runs paired next to each other [pairs]")
    for key, entry in comparison.items():
        name, workload = key.split("/", 1)
        w = workloads.get(key, {})
        size = (
            f"{w.get('events', 0):,} events, {w.get('checkouts', 0):,} checkouts"
            if name == "burst"
            else f"{w.get('measured_checkouts', 0):,} checkouts measured"
        )
        print(
            f"\n  {name}, {workload}: {size}; fan-out {w.get('fanout_mean', 0)} qualifying clicks per "
            f"checkout (p99 {w.get('fanout_p99', 0)}, max {w.get('fanout_max', 0)}), "
            f"{w.get('attributable_pct', 0)} % attributable"
        )
        for metric, label in COMPARED[name]:
            if metric not in entry:
                continue
            m = entry[metric]
            job_v, original_v = (_number(m[d]) if d in m else "-" for d in ("job", "original"))
            ratio = f"{m['ratio']:.2f}" if m["ratio"] is not None else "-"
            pairs = " / ".join(f"{r:.2f}" for r in m["pair_ratios"])
            print(f"    {label:<22} job {job_v:>9}   original {original_v:>9}   ratio {ratio:>5}  [{pairs}]")
            if m.get("models_ratio") is not None:
                print(
                    f"    {'':<22} all {len(ATTRIBUTION_MODELS)} models in one job {_number(m['models'])}: "
                    f"{m['models_ratio']:.2f}x first_click alone"
                )
        for t in entry["targets"]:
            print(f"    target: {t['target']}: {'MET' if t['met'] else 'NOT MET'} ({t['value']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per burst (default 200000)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="repetitions of each run (default 3; of each design in burst and latency)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured runs of passthrough and burst (each design) first (default 1): a TaskManager "
        "that has just started is still compiling Flink's own code",
    )
    parser.add_argument(
        "--bursts",
        type=int,
        default=2,
        help="bursts per burst and pass-through job (default 2: cold, warm); more add later warm ones, "
        "reported as `last` (how a job warms up: each new job recompiles its operators' hot code)",
    )
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="length of the latency run (60)")
    parser.add_argument(
        "--latency-rate", type=float, default=100.0, help="checkouts/s in the latency run (default 100)"
    )
    parser.add_argument(
        "--only",
        choices=ONLY,
        action="append",
        help="run only these (repeatable); burst and latency run the job and the original design, "
        "burst-job, burst-original, latency-job, latency-original one; burst-models and latency-models "
        "add the job with every attribution model",
    )
    parser.add_argument(
        "--workload",
        choices=list(WORKLOADS),
        action="append",
        help="traffic of the burst and latency runs (repeatable; default: original-traffic and synthetic; "
        "datagen-traffic adds ~20 minutes)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated workloads (default 42)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    # Killed (a timeout, `kill`): unwind as Ctrl-C does, so each run's `finally` cancels its job
    # and deletes its topics instead of leaving them running on the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = selection(args.only)
    workloads = args.workload or ["original-traffic", "synthetic"]
    machine_info = machine(settings)
    print(f"machine: {describe_machine(machine_info)}", flush=True)
    if machine_info["load_average_at_start"] > 0.5 * (machine_info["cores"] or 1):
        print("WARNING: the machine is busy before the benchmark starts; figures will be low", flush=True)
    original_needed = any("original" in chosen.get(name, []) for name in PAIRED)
    if original_needed:
        check_original_templates(settings)
    if stack.flink_overview(settings) is None or stack.flink_jars_stale(settings):
        stack.up(settings)
    cancel_leftovers(settings)
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {settings.users_table} (id, username, password) SELECT g, 'bench-' || g, 'x' "
            "FROM generate_series(%s, %s) g ON CONFLICT DO NOTHING",
            (USER_BASE + 1, USER_BASE + USERS),
        )
    conn.close()
    if original_needed:
        create_original_table(settings)

    results: dict[str, list[dict]] = {}
    pairs: dict[str, dict[str, dict[int, dict]]] = {}  # "burst/synthetic" -> design -> repetition -> result
    described: dict[str, dict] = {}

    def repeat(label: str, run: Callable[[], dict], warmups: int) -> None:
        for w in range(warmups):
            try:
                print(f"{label} warm-up #{w + 1} (not counted): {figures(run())}", flush=True)
            except Exception as error:
                print(f"{label} warm-up #{w + 1}: FAILED: {error!r}", flush=True)
        for r in range(args.repeat):
            try:
                result = run()
            except Exception as error:  # keep the other runs' figures
                print(f"{label} #{r + 1}: FAILED: {error!r}", flush=True)
                continue
            results.setdefault(label, []).append(result)
            print(f"{label} #{r + 1}: {figures(result)}", flush=True)

    for name, designs in chosen.items():
        if name == "generator":
            repeat(name, lambda: run_generator(settings, args.events), 0)
        elif name == "datagen":
            repeat(name, lambda: run_datagen(settings, args.events), 0)
        elif name == "passthrough":
            synthetic = build_workload("synthetic", args.seed, CHECKOUTS_PER_SECOND, events=args.events)

            def run_passthrough(synthetic: Workload = synthetic) -> dict:
                return run_burst(settings, PASSTHROUGH, synthetic, f"p{uuid.uuid4().hex[:6]}", args.bursts)

            repeat(name, run_passthrough, args.warmup)
            del synthetic
        else:
            run_design = functools.partial(run_burst, bursts=args.bursts) if name == "burst" else run_latency
            for index, workload in enumerate(workloads):
                if name == "burst":
                    load = build_workload(workload, args.seed, CHECKOUTS_PER_SECOND, events=args.events)
                else:
                    load = build_workload(
                        workload, args.seed, args.latency_rate, seconds=args.latency_seconds
                    )
                key = f"{name}/{workload}"
                # The fan-out of what is measured: every checkout of a burst, those after the
                # lead-in in the latency run.
                described[key] = load.describe(
                    settings.attribution_window_seconds, None if name == "burst" else 0.0
                )
                print(f"{key}: {described[key]}", flush=True)
                # Warm-up runs once per benchmark, each design: Flink's own code is compiled then.
                for w in range(args.warmup if name == "burst" and index == 0 else 0):
                    for d in designs:
                        try:
                            result = run_design(settings, DESIGNS[d], load, f"w{w}x{uuid.uuid4().hex[:6]}")
                            print(f"{key}/{d} warm-up #{w + 1} (not counted): {figures(result)}", flush=True)
                        except Exception as error:
                            print(f"{key}/{d} warm-up #{w + 1}: FAILED: {error!r}", flush=True)
                for r in range(args.repeat):
                    data_tag = f"{name[0]}{r}x{uuid.uuid4().hex[:6]}"  # the same ids for both designs
                    for d in alternate(designs, r):
                        label = f"{key}/{d}"
                        try:
                            result = run_design(settings, DESIGNS[d], load, data_tag)
                        except Exception as error:  # keep the other runs' figures
                            print(f"{label} #{r + 1}: FAILED: {error!r}", flush=True)
                            continue
                        results.setdefault(label, []).append(result)
                        pairs.setdefault(key, {}).setdefault(d, {})[r] = result
                        print(f"{label} #{r + 1}: {figures(result)}", flush=True)
                del load

    machine_info["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print("\nMedians over", args.repeat, "runs:")
    medians: dict[str, Any] = {}
    for label, rs in results.items():
        medians[label] = {k: statistics.median(r[k] for r in rs) for k in figures(rs[0])}
        print(f"  {label:<32} " + "  ".join(f"{k}={v}" for k, v in medians[label].items()))
    job_burst = medians.get("burst/synthetic/job")
    if job_burst and "passthrough" in medians:
        for phase, _ in PHASES:
            key = f"{phase}_events_per_s"
            ratio = round(job_burst[key] / medians["passthrough"][key], 2)
            medians[f"burst_over_passthrough_{phase}"] = ratio
            print(f"  burst (synthetic, job) / passthrough throughput, {phase}: {ratio:.2f}")
    print("\nCPU (% of one core, mean) and peak RSS (MiB) per process, last run of each (its last burst):")
    for label, rs in results.items():
        print(f"  {label}:")
        for proc, res in rs[-1].get("resources", {}).items():
            print(f"    {proc:<18} cpu {res['cpu_pct']:6.1f}%  rss {res['peak_rss_mib']:6d} MiB")
    for label, rs in results.items():
        if "taskmanager_us_per_event" in rs[-1]:
            print(f"\nTaskManager CPU per event (µs) by thread, last {label} run (its last burst):")
            for kind, us in rs[-1]["taskmanager_us_per_event"].items():
                print(f"    {us:6.2f}  {kind}")
    comparison = compare(pairs, args.latency_rate)
    if comparison:
        print_comparison(comparison, described, machine_info)
    out = Path(settings.stack_dir) / "bench" / f"bench-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": machine_info,
                "workloads": described,
                "runs": results,
                "medians": medians,
                "comparison": comparison,
            },
            indent=2,
        )
    )
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
