"""Benchmarks of the embedded stack (`make bench`): generator, burst, steady-rate latency, and a
pass-through baseline, each repeated; prints medians and ratios and saves JSON under
STACK_DIR/bench/. Not a test: it measures, it does not assert.

  generator    events/s from one process into the broker (pre-serialised events, one producer)
  burst        N events (3 clicks : 1 checkout) produced as fast as possible, from the first send
               to the last checkout row visible in Postgres
  passthrough  the same N events read, parsed and validated by a job that writes valid records to
               a blackhole sink and rejected ones to dead_letters, as the job does; from the first
               send until end markers sent last on every partition are visible in dead_letters
  latency      100 checkouts/s (plus 300 clicks/s) for a while; produce -> row visible, for
               attributed checkouts (updated_at minus the time the checkout was sent)

Each burst and pass-through run submits its own job on fresh topics, on the running stack
(`make up`; started if absent), and sends it two bursts: "cold", right after submission, while the
JVM is still compiling the job's generated code, and "warm", once event time has passed all of the
first burst, its state is gone and the TaskManager is idle: the throughput of a running job.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from kafka import KafkaProducer

from attribution import job, stack
from attribution.config import Settings
from datagen.gen_fake_data import Producer as GeneratorProducer

FORMAT = "%Y-%m-%d %H:%M:%S.%f"
USERS = 5000  # bench users: ids 10_000_001 ..
USER_BASE = 10_000_000


def stamp(moment: datetime) -> str:
    return moment.strftime(FORMAT)[:-3]


def workload(
    tag: str, checkouts: int, start: datetime, step: timedelta, first: int = 0
) -> list[tuple[str, bytes, bytes]]:
    """(topic kind, key, value) triples: per checkout, three clicks on the same product in the
    seconds before it. Serialised once, up front, so that producing measures producing."""
    out = []
    for i in range(first, first + checkouts):
        user = USER_BASE + 1 + i % USERS
        product = str(i % 500)
        at = start + i * step
        key = str(user).encode()
        for c in range(3):
            click = {
                "click_id": f"{tag}-k{i}-{c}",
                "user_id": user,
                "product_id": product,
                "product": "p",
                "price": 1.5,
                "url": "u",
                "user_agent": "a",
                "ip_address": "1.2.3.4",
                "datetime_occured": stamp(at - timedelta(seconds=3 - c)),
            }
            out.append(("clicks", key, json.dumps(click).encode()))
        checkout = {
            "checkout_id": f"{tag}-c{i}",
            "user_id": user,
            "product_id": product,
            "payment_method": "VISA",
            "total_amount": 10.5,
            "shipping_address": "s",
            "billing_address": "b",
            "user_agent": "a",
            "ip_address": "1.2.3.4",
            "datetime_occured": stamp(at),
        }
        out.append(("checkouts", key, json.dumps(checkout).encode()))
    return out


class Sender:
    """One long-lived, batching producer: the generator's (confluent-kafka) or, for comparison,
    kafka-python with the same batching."""

    def __init__(self, settings: Settings, client: str = "confluent") -> None:
        self.client = client
        if client == "confluent":
            self._p = GeneratorProducer(settings)
        else:
            self._p = KafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                acks=1,
                linger_ms=20,
                batch_size=512 * 1024,
            )

    def send(self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
        if self.client == "confluent":
            self._p.send_raw(topic, value, key, partition)
        else:
            self._p.send(topic, key=key, value=value, partition=partition)

    def flush(self) -> None:
        (self._p.producer if self.client == "confluent" else self._p).flush()

    def close(self) -> None:
        self._p.close()  # both flush first


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


def advance(settings: Settings, topics: dict[str, str], to: datetime) -> None:
    """A click and a checkout stamped `to` on every partition, so event time passes everything."""

    def marker(kind: str) -> bytes:
        id_field = "click_id" if kind == "clicks" else "checkout_id"
        body = {"user_id": 1, "product_id": "wm", "datetime_occured": stamp(to)}
        body[id_field] = f"wm-{uuid.uuid4()}"
        return json.dumps(body).encode()

    to_every_partition(settings, topics, marker)


class ResourceSampler:
    """CPU (mean %, of one core) and peak RSS of each stack service (the process and all its
    descendants, looked up at every sample, as Postgres forks a backend per connection) and of
    this process."""

    def __init__(self, settings: Settings) -> None:
        self.groups = {name: pid for name, pid in stack.status(settings).items() if pid}
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
            rss = sum((_safe(lambda p=p: p.memory_info().rss) or 0) for p in group) / 2**20
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
        self.task_dir = Path(f"/proc/{stack.running_pid(settings, 'taskmanager')}/task")
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


def _safe(call: Callable[[], float]) -> float | None:
    try:
        return call()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class BenchJob:
    """A job (the attribution job or the pass-through) on fresh topics."""

    def __init__(self, settings: Settings, name: str, insert_templates: tuple[str, ...] = ()) -> None:
        tag = f"{name}-{uuid.uuid4().hex[:6]}"
        self.tag = tag
        self.settings = replace(
            settings, clicks_topic=f"bench-clicks-{tag}", checkouts_topic=f"bench-checkouts-{tag}"
        )
        self.topics = {"clicks": self.settings.clicks_topic, "checkouts": self.settings.checkouts_topic}
        stack.create_topics(self.settings, list(self.topics.values()))
        env = {
            **os.environ,
            "CLICKS_TOPIC": self.topics["clicks"],
            "CHECKOUTS_TOPIC": self.topics["checkouts"],
            "JOB_NAME": f"bench-{tag}",
            "KAFKA_CONSUMER_GROUP": f"bench-{tag}",
        }
        self.job_id = job.submit(self.settings, env=env, insert_templates=insert_templates)
        job.wait_until_running(self.settings, self.job_id)

    def cancel(self) -> None:
        job.cancel(self.settings, self.job_id)
        stack.delete_topics(self.settings, list(self.topics.values()))
        # Its rows are of no further use; left, they would slow every later run's row counts.
        with psycopg2.connect(self.settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            cur.execute(
                f"DELETE FROM {self.settings.sink_table} WHERE checkout_id LIKE %s", (self.tag + "-%",)
            )
            cur.execute(
                f"DELETE FROM {self.settings.dead_letter_table} WHERE source_topic = ANY(%s)",
                (list(self.topics.values()),),
            )
        conn.close()


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
            return cur.fetchone()[0]

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
    stack.create_topics(settings, names)
    try:
        yield
    finally:
        stack.delete_topics(settings, names)


def run_generator(settings: Settings, events: int) -> dict:
    """Both clients on the same pre-serialised events, one after the other."""
    result: dict = {}
    data = workload("gen", events // 4, datetime(2024, 1, 1), timedelta(milliseconds=10))
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


def settle(settings: Settings, job_id: str, watermark: datetime, timeout: float = 120) -> None:
    """Until the join has processed `watermark` and fired the timers that clean up the state before
    it, so that a following burst does not pay for that. The join emits a watermark after its
    timers, held back by the attribution window: the sink sees `watermark` minus the window."""
    seen = watermark - timedelta(seconds=settings.attribution_window_seconds)
    target = seen.replace(tzinfo=UTC).timestamp() * 1000
    wait(lambda: job.vertex_watermark(settings, job_id, "Sink: attributed_checkouts") >= target, timeout)


def wait_for_idle(settings: Settings, below_pct: float = 10.0, timeout: float = 60) -> None:
    """Until the TaskManager uses less than `below_pct` of a core for a second: the JIT compiler
    has finished with the job's code and nothing of the previous burst is still in flight."""
    tm = psutil.Process(stack.running_pid(settings, "taskmanager"))
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
STEP = timedelta(milliseconds=10)  # event time between checkouts in a burst


def run_burst(settings: Settings, events: int, passthrough: bool) -> dict:
    """A cold and a warm burst (see the module's doc) on one new job."""
    name = "pass" if passthrough else "burst"
    inserts = ("process/passthrough_benchmark.sql", "process/dead_letters.sql") if passthrough else ()
    bench = BenchJob(settings, name, inserts)
    rows = Rows(settings)
    result: dict = {"events": events}
    try:
        checkouts = events // 4
        for phase, start in PHASES:
            tag = f"{bench.tag}-{phase}"
            data = workload(tag, checkouts, start, STEP)
            # Event time after the burst passes its clicks' hour: the join's state of this burst
            # is cleaned before the next one starts.
            after = start + checkouts * STEP + timedelta(hours=2)
            threads = TaskManagerThreads(settings)
            with ResourceSampler(settings) as sampler:
                began = time.time()  # the clock Postgres stamps rows with: the same host's
                produce(settings, data, bench.topics)
                if passthrough:
                    sent = end_markers(settings, bench.topics, f"end-{tag}")
                    done = rows.wait_for_dead_letters(list(bench.topics.values()), f"end-{tag}", sent)
                else:
                    advance(settings, bench.topics, after)
                    done = rows.wait_for(f"{tag}-c", checkouts, f"{tag}-c{checkouts - 1}")
                seconds = done - began
            result[f"{phase}_seconds"] = round(seconds, 2)
            result[f"{phase}_events_per_s"] = round(len(data) / seconds)
            result["resources"] = sampler.summary()  # the warm burst's, the last one
            result["taskmanager_us_per_event"] = threads.us_per_event(len(data))  # the warm burst's too
            if phase == "cold":
                if not passthrough:
                    watermark = after - timedelta(seconds=settings.out_of_orderness_seconds)
                    settle(bench.settings, bench.job_id, watermark)
                wait_for_idle(settings)
        return result
    finally:
        rows.close()
        bench.cancel()


def run_latency(settings: Settings, seconds: float, checkouts_per_s: float) -> dict:
    bench = BenchJob(settings, "latency")
    try:
        p = Sender(settings)
        sent_at: dict[str, float] = {}
        n = int(seconds * checkouts_per_s)
        with ResourceSampler(settings) as sampler:
            began = time.monotonic()
            for i in range(n):
                due = began + i / checkouts_per_s
                if (ahead := due - time.monotonic()) > 0:
                    time.sleep(ahead)
                now = datetime.now(UTC).replace(tzinfo=None)
                # Distinct users and products per checkout (first=i), as in real traffic.
                for kind, key, value in workload(bench.tag, 1, now, timedelta(0), first=i):
                    p.send(bench.topics[kind], value, key)
                sent_at[f"{bench.tag}-c{i}"] = time.time()
            p.flush()
            rows = Rows(settings)
            try:
                rows.wait_for(f"{bench.tag}-", n, f"{bench.tag}-c{n - 1}", timeout=120)
            finally:
                rows.close()
        p.close()
        with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT checkout_id, extract(epoch FROM updated_at) FROM {settings.sink_table} "
                "WHERE checkout_id LIKE %s AND click_id IS NOT NULL",
                (bench.tag + "-%",),
            )
            latencies = sorted(float(at) - sent_at[cid] for cid, at in cur.fetchall() if cid in sent_at)
        conn.close()
        q = statistics.quantiles(latencies, n=100)
        return {
            "checkouts": n,
            "attributed": len(latencies),
            "p50_s": round(q[49], 3),
            "p95_s": round(q[94], 3),
            "p99_s": round(q[98], 3),
            "resources": sampler.summary(),
        }
    finally:
        bench.cancel()


def figures(result: dict) -> dict[str, float]:
    """The numbers of a run's result (not the per-process and per-thread breakdowns)."""
    return {k: v for k, v in result.items() if isinstance(v, int | float)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per burst (default 200000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each run (default 3)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured runs of passthrough and burst first (default 1): a TaskManager that has just "
        "started is still compiling Flink's own code",
    )
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="length of the latency run (60)")
    parser.add_argument(
        "--only", choices=["generator", "datagen", "burst", "passthrough", "latency"], action="append"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if stack.flink_overview(settings) is None or stack.flink_jars_stale(settings):
        stack.up(settings)
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO commerce.users (id, username, password) SELECT g, 'bench-' || g, 'x' "
            "FROM generate_series(%s, %s) g ON CONFLICT DO NOTHING",
            (USER_BASE + 1, USER_BASE + USERS),
        )
    conn.close()

    runs = {
        "generator": lambda: run_generator(settings, args.events),
        "datagen": lambda: run_datagen(settings, args.events),
        "passthrough": lambda: run_burst(settings, args.events, passthrough=True),
        "burst": lambda: run_burst(settings, args.events, passthrough=False),
        "latency": lambda: run_latency(settings, args.latency_seconds, 100.0),
    }
    results: dict[str, list[dict]] = {}
    for name, run in runs.items():
        if args.only and name not in args.only:
            continue
        for w in range(args.warmup if name in {"passthrough", "burst"} else 0):
            print(f"{name} warm-up #{w + 1} (not counted): {figures(run())}", flush=True)
        for r in range(args.repeat):
            try:
                result = run()
            except Exception as error:  # keep the other runs' figures
                print(f"{name} #{r + 1}: FAILED: {error!r}", flush=True)
                continue
            results.setdefault(name, []).append(result)
            print(f"{name} #{r + 1}: {figures(result)}", flush=True)

    print("\nMedians over", args.repeat, "runs:")
    medians = {}
    for name, rs in results.items():
        medians[name] = {k: statistics.median(r[k] for r in rs) for k in figures(rs[0])}
        print(f"  {name:<12} " + "  ".join(f"{k}={v}" for k, v in medians[name].items()))
    if "burst" in medians and "passthrough" in medians:
        for phase, _ in PHASES:
            key = f"{phase}_events_per_s"
            ratio = round(medians["burst"][key] / medians["passthrough"][key], 2)
            medians[f"burst_over_passthrough_{phase}"] = ratio
            print(f"  burst / passthrough throughput, {phase}: {ratio:.2f}")
    print("\nCPU (% of one core, mean) and peak RSS (MiB) per process, last run of each (warm burst):")
    for name, rs in results.items():
        print(f"  {name}:")
        for proc, res in rs[-1].get("resources", {}).items():
            print(f"    {proc:<18} cpu {res['cpu_pct']:6.1f}%  rss {res['peak_rss_mib']:6d} MiB")
    for name, rs in results.items():
        if "taskmanager_us_per_event" in rs[-1]:
            print(f"\nTaskManager CPU per event (µs) by thread, last {name} run (warm burst):")
            for kind, us in rs[-1]["taskmanager_us_per_event"].items():
                print(f"    {us:6.2f}  {kind}")
    out = Path(settings.stack_dir) / "bench" / f"bench-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "runs": results, "medians": medians}, indent=2))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
