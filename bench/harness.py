"""What runs the benchmarks on the embedded stack: the producers, the designs under test and their
jobs (BenchJob), the watchers of their rows and of the machine (Rows, ResourceSampler,
TaskManagerThreads), and each benchmark's run (run_generator, run_datagen, run_burst, run_latency).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
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
from typing import Any

import jinja2
import psutil
import psycopg2
from kafka import KafkaProducer

from attribution import job, provision, sql, stack, supervision
from attribution.config import PROJECT_ROOT, Settings, schema_of
from attribution.models import MODELS, PRIMARY
from bench.workloads import CHECKOUTS_PER_SECOND, USER_BASE, USERS, Workload, build_workload, stamp
from datagen.gen_fake_data import Producer as GeneratorProducer

BENCH_DIR = Path(__file__).resolve().parent


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
    templates: tuple[Path, ...]  # SQL template files for job.submit's output_sql; () runs the job's outputs
    sink_vertex: str  # part of the name of the job vertex that writes the rows (settle())
    sink_table: str | None = None  # its Postgres table (in SINK_TABLE's schema), if not SINK_TABLE
    models: str = PRIMARY  # ATTRIBUTION_MODELS of the job (rows are counted in SINK_TABLE)


ORIGINAL_TEMPLATES = tuple(
    BENCH_DIR / "original" / path
    for path in (
        "source/clicks.sql",
        "source/checkouts.sql",
        "source/users.sql",
        "sink/attributed_checkouts.sql",
        "process/attribute_checkouts.sql",
    )
)
# The fair baseline: the original design with the lookup cache of the job's settings (#29).
ORIGINAL_CACHED_TEMPLATES = tuple(
    BENCH_DIR / "original" / "cached" / "users.sql" if path.match("source/users.sql") else path
    for path in ORIGINAL_TEMPLATES
)
ORIGINAL_TABLE = BENCH_DIR / "original" / "postgres" / "attributed_checkouts.sql"
JOB_SINK = f"Sink: {MODELS[PRIMARY].written_table}"  # the vertex that writes SINK_TABLE
DESIGNS = {
    "job": Design("job", (), JOB_SINK),
    # The job with every attribution model in one statement set (#14).
    "models": Design("models", (), JOB_SINK, models=",".join(MODELS)),
    "original": Design(
        "original", ORIGINAL_TEMPLATES, "original_attributed_checkouts", "original_attributed_checkouts"
    ),
    "original-cached": Design(
        "original-cached",
        ORIGINAL_CACHED_TEMPLATES,
        "original_attributed_checkouts",
        "original_cached_attributed_checkouts",
    ),
}
BASELINES = ("original", "original-cached")  # the designs the job is compared with
# The job's sources, parsing and validation alone: valid records into a blackhole, rejected ones to
# dead_letters with the job's own template.
PASSTHROUGH = Design(
    "passthrough", (BENCH_DIR / "sql" / "passthrough.sql", PROJECT_ROOT / "code/process/dead_letters.sql"), ""
)


def design_settings(settings: Settings, design: Design) -> Settings:
    """The settings a design's job is rendered with: SINK_TABLE is its result table."""
    settings = replace(settings, attribution_models=design.models)
    if design.sink_table is None:
        return settings
    return replace(settings, sink_table=f"{schema_of(settings.sink_table)}.{design.sink_table}")


def check_original_templates(settings: Settings) -> None:
    """The driver renders the original design's templates (bench/original/...) with
    attribution/sql.py: stop before anything runs if one of them, or a template it imports, is
    missing."""
    for design in BASELINES:
        check_templates(design_settings(settings, DESIGNS[design]), DESIGNS[design].templates)


def check_templates(settings: Settings, templates: tuple[Path, ...]) -> None:
    for path in templates:
        try:
            sql.render_string(path.read_text(), settings)
        except (OSError, jinja2.TemplateNotFound) as error:
            reason = (
                f"it imports {error.name!r}, which is missing"
                if isinstance(error, jinja2.TemplateNotFound)
                else error.strerror
            )
            raise SystemExit(
                f"error: cannot render the original design's template {path}: {reason} "
                "(`--only burst-job --only latency-job` measures the job alone)"
            ) from None


def create_original_table(settings: Settings) -> None:
    """Each baseline's result table (bench/original/postgres): postgres/init.sql does not create
    them, they are the bench's."""
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        for design in BASELINES:
            cur.execute(
                sql.render_string(ORIGINAL_TABLE.read_text(), design_settings(settings, DESIGNS[design]))
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
            self.job_id = job.submit(self.settings, output_sql=design.templates)
            job.wait_until_running(self.settings, self.job_id)
        except BaseException:
            provision.delete_topics(self.settings, list(self.topics.values()))
            raise

    def failure(self) -> str | None:
        """Why the job failed (its first failure's root cause), or None while it has not."""
        history = job.exception_history(self.settings, self.job_id)
        return job.root_cause(history[-1].get("stacktrace", "")) if history else None

    def cancel(self) -> None:
        job.cancel(self.settings, self.job_id)
        provision.delete_topics(self.settings, list(self.topics.values()))
        # Its rows are of no further use; left, they would slow every later run's row counts.
        with psycopg2.connect(self.settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            for model in self.settings.models:
                table = self.settings.model_written_table(model)
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


def prepare(settings: Settings, original: bool) -> None:
    """Before the first run: the stack (started if absent or its jars are stale), no job left by an
    interrupted benchmark, the bench's users, and if the original design runs, its templates
    checked (first, before anything starts) and its result table."""
    if original:
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
    if original:
        create_original_table(settings)


class Rows:
    """Watches the result tables over one connection. Polling must not load Postgres: a LIKE count
    is a sequential scan of the whole table, which every 50 ms took CPU from the job it measured.
    When a run is complete, the time its last row was written is read from the row itself
    (`updated_at`, `written_at`: clock_timestamp() at the write), so polling adds no error."""

    def __init__(self, settings: Settings, failure: Callable[[], str | None]) -> None:
        self.table = settings.sink_table
        self.dead_letters = settings.dead_letter_table
        self.failure = failure  # the cause, once the job writing these rows has failed
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
        count = f"SELECT count(*) {where}"
        wait(lambda: self._one(count, topics, payload) >= n, timeout, failure=self.failure)
        return float(self._one(f"SELECT extract(epoch FROM max(written_at)) {where}", topics, payload))

    def wait_for(self, prefix: str, n: int, last_id: str, timeout: float = 600) -> float:
        """Until `n` rows with the prefix exist (cheap polls for the last one first, then counts);
        returns when the last of them was written (epoch seconds)."""
        wait(lambda: self.exists(last_id), timeout, failure=self.failure)
        wait(lambda: self.count(prefix) >= n, timeout, interval=0.25, failure=self.failure)
        where = f"FROM {self.table} WHERE checkout_id LIKE %s"
        return float(self._one(f"SELECT extract(epoch FROM max(updated_at)) {where}", prefix + "%"))

    def close(self) -> None:
        self.conn.close()


def wait(
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    failure: Callable[[], str | None] = lambda: None,
) -> None:
    """Until `check` holds; fails at once, with its cause, when `failure` names one (a job that
    restarts would otherwise be found out only by the timeout, minutes later)."""
    deadline = time.monotonic() + timeout
    next_look = 0.0
    while not check():
        if time.monotonic() >= next_look:
            if cause := failure():
                raise RuntimeError(f"the benchmark's job failed: {cause}")
            next_look = time.monotonic() + 1.0
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
    rows = Rows(bench.settings, bench.failure)
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
        sent_at: dict[str, float] = {}
        with ResourceSampler(settings) as sampler, contextlib.closing(Sender(settings)) as p:
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
            # ends when every checkout has its row (only attributed ones are measured). Just past
            # the watermark's delay: the job dead-letters an event stamped further ahead of its
            # Kafka timestamp than MAX_FUTURE_SKEW_SECONDS, as a marker 2 hours ahead was.
            past_the_delay = timedelta(seconds=settings.out_of_orderness_seconds + 5)
            advance(settings, bench.topics, datetime.now(UTC).replace(tzinfo=None) + past_the_delay, data_tag)
            rows = Rows(bench.settings, bench.failure)
            try:
                rows.wait_for(f"{data_tag}-c", load.checkouts, load.last_checkout_id(data_tag), timeout=120)
            finally:
                rows.close()
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
