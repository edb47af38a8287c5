"""The attribution rule in seconds: the job's own pipeline (define_pipeline in
code/checkout_attribution.py: parsing and validation, the user lookup, the interval join, the
ranking, the dead letters and the metric taps) run by a local Flink on bounded inputs of raw Kafka
records, every output column of every attribution model compared with tests/reference.py.

The inputs and outputs have the production tables' schemas (CREATE TABLE ... LIKE) on other
connectors: the raw events are JSON lines in send order, one stream per topic (the Kafka metadata
as plain columns; the rowtime and watermark as in production); the users are an in-memory lookup
table (udf/src/test/java: a processing-time lookup join needs one, a scan table would turn the
interval join into a regular join); the outputs are changelog files (debezium-json), replayed here.
"""

from __future__ import annotations

import base64
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from attribution import sql
from attribution.config import ATTRIBUTION_MODELS, Settings
from attribution.deps import client_env, ensure_test_jar
from datagen.gen_fake_data import TrafficShape, simulated_events
from tests.bad_records import bad_records, widest_id
from tests.driver import load_driver
from tests.events import checkout, click, fmt
from tests.reference import Attribution, Touch, attribute, linear_touches, parse_time

T0 = datetime(2024, 3, 1, 10, 0, 0)
HOUR = timedelta(hours=1)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
MS = timedelta(milliseconds=1)
BASE_USER = 1_000_000
USERS = 40  # u[1..USERS] of the adversarial cases
# Each model's sink (sql.PRODUCTION_SINKS).
MODEL_SINKS = {
    "first_click": "attributed_checkouts",
    "last_click": "attributed_checkouts_last_click",
    "linear": "attribution_touch_clicks",
}
MARKER_USER = 999_999_999
JOB_TIMEOUT_MS = 120_000


driver = load_driver()
K = TypeVar("K")
V = TypeVar("V")


# --- events ------------------------------------------------------------------------------------
@dataclass
class Record:
    """One Kafka record: its topic, value (a dict is sent as its JSON, in UTF-8), partition and send
    time (the production order and the Kafka timestamp); the dead-letter reason it must get."""

    topic: str
    value: dict | str | None
    partition: int
    send_at: datetime
    reason: str | None = None
    offset: int = -1

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


# --- running the pipeline ----------------------------------------------------------------------
@dataclass
class Outputs:
    attributed: dict[str, Attribution]  # first_click: the final row per checkout_id
    last_click: dict[str, Attribution]  # the final row per checkout_id
    touches: dict[tuple[str, str], Touch]  # linear: the final row per (checkout_id, click_id)
    dead_letters: dict[tuple[str, int, int], dict]  # by (topic, partition, offset)
    metrics: Counter[tuple[str, str | None]]  # rows per (metric, label value)
    latency_observed: list[datetime]  # event_time of each checkout_latency_ms observation
    retracted: Counter[str]  # retractions (delete, update before) per sink: updates were compared

    def of(self, model: str) -> Mapping[Any, Any]:
        rows: dict[str, Mapping[Any, Any]] = {
            "first_click": self.attributed,
            "last_click": self.last_click,
            "linear": self.touches,
        }
        return rows[model]


def changelog(directory: Path) -> Iterator[tuple[bool, dict]]:
    """(is_addition, row) of every change a debezium-json sink wrote, in order per file."""
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            for line in path.read_text(encoding="utf-8").splitlines():
                change = json.loads(line, parse_float=Decimal)
                yield (True, change["after"]) if change["op"] == "c" else (False, change["before"])


def timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# Which delivery of its checkout a row is of: the first one wins (compared as the tables do).
DELIVERY = ("delivered_at", "delivery_partition", "delivery_offset")


def delivery(row: dict) -> tuple:
    return tuple(row[column] for column in DELIVERY)


def attribution_of(row: dict) -> Attribution:
    amount = row["total_amount"]
    return Attribution(
        **{
            **{k: v for k, v in row.items() if k not in DELIVERY},
            "total_amount": None if amount is None else Decimal(amount),
            "checkout_time": timestamp(row["checkout_time"]),
            "click_time": timestamp(row["click_time"]),
        }
    )


def touches_as_served(directory: Path) -> dict[tuple[str, str], Touch]:
    """The linear rows as Postgres serves them from what the job wrote: each qualifying click,
    whose earliest time the table's trigger keeps when it is written again; the view
    LINEAR_SINK_TABLE adds touches (the checkout's rows) and credit (total_amount / touches, 13
    places, half up). tests/integration compares the view itself."""
    written = []
    for added, row in changelog(directory):
        assert added, f"the job only inserts touches: {row}"
        written.append(row)
    first: dict[str, tuple] = {}  # the first delivery of each checkout, whose rows the view reads
    for row in written:
        first[row["checkout_id"]] = min(first.get(row["checkout_id"], delivery(row)), delivery(row))
    clicks: dict[tuple[str, str], dict] = {}
    for row in written:
        if delivery(row) != first[row["checkout_id"]]:
            continue
        key = (row["checkout_id"], row["click_id"])
        click_time = timestamp(row["click_time"])
        earlier = clicks.get(key, {}).get("click_time")
        clicks[key] = {**row, "click_time": min(t for t in (click_time, earlier) if t is not None)}
    touches = Counter(checkout_id for checkout_id, _ in clicks)
    served = {}
    for (checkout_id, click_id), row in clicks.items():
        n = touches[checkout_id]
        amount = row["total_amount"]
        served[(checkout_id, click_id)] = Touch(
            checkout_id=checkout_id,
            click_id=click_id,
            click_time=row["click_time"],
            credit=None
            if amount is None
            else (Decimal(amount) / n).quantize(Decimal("1E-13"), rounding=ROUND_HALF_UP),
            touches=n,
            product_id=row["product_id"],
            checkout_time=datetime.fromisoformat(row["checkout_time"]),
        )
    return served


def final_rows(directory: Path, row_of: Callable[[dict], V], key: Callable[[V], K]) -> dict[K, V]:
    """The rows a changelog leaves: an addition (insert, update after) sets its key's row; a
    retraction (delete, update before) removes it only if it retracts that very row."""
    rows: dict[K, V] = {}
    for added, change in changelog(directory):
        row = row_of(change)
        if added:
            rows[key(row)] = row
        elif rows.get(key(row)) == row:
            del rows[key(row)]
    return rows


class LocalFlink:
    """Runs the job's pipeline in this process's JVM on bounded inputs."""

    def __init__(self, settings: Settings, test_jar: Path, workdir: Path) -> None:
        self.settings = settings
        self.test_jar = test_jar
        self.workdir = workdir
        self.runs = 0

    def run(self, records: list[Record], users: dict[int, str]) -> Outputs:
        from pyflink.table import EnvironmentSettings, TableEnvironment

        self.runs += 1
        root = self.workdir / f"run-{self.runs}"
        write_inputs(root, records, users)
        t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        t_env.get_config().set("pipeline.jars", self.test_jar.as_uri())
        for key, value in local_job_options(self.settings).items():
            t_env.get_config().set(key, value)
        # The production tables are declared (nothing connects to Kafka or Postgres) only to
        # give the test tables their schemas.
        driver.create_production_tables(t_env, self.settings)
        sources, sinks = create_test_tables(t_env, root)
        statement_set = driver.define_pipeline(t_env, self.settings, sources, sinks)
        statement_set.execute().wait(JOB_TIMEOUT_MS)
        return read_outputs(root)


def local_job_options(settings: Settings) -> dict[str, str]:
    """The job's own options, without checkpoints and restarts: a test job runs once, briefly."""
    options = {
        key: value
        for key, value in driver.job_configuration(settings).items()
        if not key.startswith(("execution.checkpointing.", "state.", "restart-strategy."))
    }
    return {**options, "restart-strategy.type": "none"}


def write_inputs(root: Path, records: list[Record], users: dict[int, str]) -> None:
    """One JSON-lines file per topic in send order; offsets numbered per topic and partition. The
    payload column is BYTES, which the json format reads as base64: the payload's UTF-8 bytes."""
    offsets: Counter[tuple[str, int]] = Counter()
    lines: dict[str, list[str]] = {"clicks": [], "checkouts": []}
    for record in sorted(records, key=lambda r: r.send_at):
        record.offset = offsets[(record.topic, record.partition)]
        offsets[(record.topic, record.partition)] += 1
        lines[record.topic].append(
            json.dumps(
                {
                    "payload": None
                    if record.payload is None
                    else base64.b64encode(record.payload.encode()).decode(),
                    "kafka_topic": record.topic,
                    "kafka_partition": record.partition,
                    "kafka_offset": record.offset,
                    "kafka_timestamp": fmt(record.send_at) + "Z",
                }
            )
        )
    for topic, topic_lines in lines.items():
        (root / topic).mkdir(parents=True)
        (root / topic / "records.json").write_text("\n".join(topic_lines) + "\n", encoding="utf-8")
    (root / "users.tsv").write_text("".join(f"{i}\t{name}\n" for i, name in users.items()), encoding="utf-8")


def create_test_tables(t_env, root: Path) -> tuple[dict[str, str], dict[str, str]]:
    def json_lines(path: Path) -> str:
        return (
            f"'connector' = 'filesystem', 'path' = '{path}', 'format' = 'json', "
            "'json.timestamp-format.standard' = 'SQL'"
        )

    def changelog_files(path: Path) -> str:
        return f"'connector' = 'filesystem', 'path' = '{path}', 'format' = 'debezium-json'"

    for topic in ("clicks", "checkouts"):
        # The Kafka metadata columns become plain ones; payload, rowtime and watermark stay.
        t_env.execute_sql(
            f"""CREATE TEMPORARY TABLE test_{topic} (
                    kafka_topic STRING, kafka_partition INT, kafka_offset BIGINT,
                    kafka_timestamp TIMESTAMP_LTZ(3)
                ) WITH ({json_lines(root / topic)})
                LIKE {sql.PRODUCTION_SOURCES[topic]} (EXCLUDING OPTIONS EXCLUDING METADATA)"""
        )
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE test_users
            WITH ('connector' = 'in-memory-lookup', 'path' = '{root / "users.tsv"}')
            LIKE {sql.PRODUCTION_SOURCES["users"]} (EXCLUDING OPTIONS)"""
    )
    for name, table in sql.PRODUCTION_SINKS.items():
        t_env.execute_sql(
            f"""CREATE TEMPORARY TABLE test_{name} WITH ({changelog_files(root / "out" / name)})
                LIKE {table} (EXCLUDING OPTIONS EXCLUDING CONSTRAINTS)"""
        )
    sources = {"clicks": "test_clicks", "checkouts": "test_checkouts", "users": "test_users"}
    return sources, {name: f"test_{name}" for name in sql.PRODUCTION_SINKS}


def read_outputs(root: Path) -> Outputs:
    out = root / "out"
    attributed = final_rows(out / MODEL_SINKS["first_click"], attribution_of, lambda a: a.checkout_id)
    last_click = final_rows(out / MODEL_SINKS["last_click"], attribution_of, lambda a: a.checkout_id)
    touches = touches_as_served(out / MODEL_SINKS["linear"])
    retracted = Counter(sink.name for sink in out.iterdir() for added, _ in changelog(sink) if not added)
    dead_letters = {
        (row["source_topic"], row["source_partition"], row["source_offset"]): row
        for added, row in changelog(root / "out" / "dead_letters")
        if added
    }
    metrics: Counter[tuple[str, str | None]] = Counter()
    latency: list[datetime] = []
    for added, row in changelog(root / "out" / "metrics"):
        if added:
            metrics[(row["metric"], row["label_value"])] += 1
            if row["metric"] == "checkout_latency_ms":
                event_time = timestamp(row["event_time"])
                assert event_time is not None, row
                latency.append(event_time)
    return Outputs(attributed, last_click, touches, dead_letters, metrics, latency, retracted)


def job_settings(stack_dir: Path, **env: str) -> Settings:
    return Settings.from_env({"STACK_DIR": str(stack_dir), "JOB_SUBMISSION": "application", **env})


@pytest.fixture(scope="module")
def flink(tmp_path_factory: pytest.TempPathFactory) -> LocalFlink:
    """Every model in one job (the default is first_click only: see test_settings_reach_the_rule)."""
    settings = job_settings(tmp_path_factory.mktemp("stack"), ATTRIBUTION_MODELS=",".join(ATTRIBUTION_MODELS))
    assert settings.models == ATTRIBUTION_MODELS
    # The first TableEnvironment starts the JVM, with the jars of FLINK_LIB_DIR (the UDF jar too);
    # the test connectors are added to it as pipeline.jars.
    os.environ.update(client_env(settings))
    return LocalFlink(settings, ensure_test_jar(), tmp_path_factory.mktemp("runs"))


# --- what the outputs must be ------------------------------------------------------------------
def reference(records: list[Record], users: dict[int, str]) -> dict[str, Mapping[Any, Any]]:
    """Every model's rows for these records, by the reference."""
    clicks = [r.event for r in records if r.valid and r.topic == "clicks"]
    checkouts = [r.event for r in records if r.valid and r.topic == "checkouts"]
    return {
        "first_click": attribute(clicks, checkouts, users),
        "last_click": attribute(clicks, checkouts, users, model="last_click"),
        "linear": linear_touches(clicks, checkouts),
    }


def expected_metrics(records: list[Record], users: dict[int, str], late: Counter[str]) -> Counter:
    """Rows per (metric, label) of the counters (not the latency histogram) for these records."""
    clicks = [r.event for r in records if r.valid and r.topic == "clicks"]
    checkouts = [r.event for r in records if r.valid and r.topic == "checkouts"]
    attributed = attribute(clicks, checkouts, users)
    metrics: Counter[tuple[str, str | None]] = Counter()
    for c in checkouts:  # every delivery counts, a duplicate too
        kind = "known" if int(c["user_id"]) in users else "unknown"
        metrics[("checkouts", kind)] += 1
        if attributed[c["checkout_id"]].click_id is None:
            metrics[("checkouts_unattributed", kind)] += 1
    for topic, count in late.items():
        metrics[("late_events", topic)] += count
    for r in records:
        if r.reason:
            metrics[("malformed_records", r.reason)] += 1
    return metrics


def counters(out: Outputs) -> Counter:
    return Counter({k: v for k, v in out.metrics.items() if k[0] != "checkout_latency_ms"})


def diff(expected: Mapping[Any, Any], actual: Mapping[Any, Any]) -> str:
    lines = [
        f"{key}:\n   expected {expected.get(key)}\n   actual   {actual.get(key)}"
        for key in sorted(set(expected) | set(actual))
        if expected.get(key) != actual.get(key)
    ]
    return "\n".join(lines[:30]) + (f"\n... {len(lines) - 30} more" if len(lines) > 30 else "")


def mismatches(expected: Mapping[str, Mapping[Any, Any]], out: Outputs) -> str:
    """Each model whose rows differ from the reference, with the differences."""
    return "\n".join(
        f"{model}:\n{diff(expected[model], out.of(model))}"
        for model in ATTRIBUTION_MODELS
        if out.of(model) != expected[model]
    )


def credit_errors(touches: Mapping[tuple[str, str], Touch], attributed: Mapping[str, Attribution]) -> dict:
    """Checkouts whose linear credits do not add up to total_amount (within 1e-10 per touch), or
    whose rows disagree on touches."""
    rows: dict[str, list[Touch]] = {}
    for touch in touches.values():
        rows.setdefault(touch.checkout_id, []).append(touch)
    errors: dict[str, object] = {}
    for checkout_id, shares in rows.items():
        total = attributed[checkout_id].total_amount
        credits = [t.credit for t in shares]
        if {t.touches for t in shares} != {len(shares)}:
            errors[checkout_id] = ("touches", [t.touches for t in shares])
        elif total is None:
            if credits != [None] * len(shares):
                errors[checkout_id] = ("credits without an amount", credits)
        elif None in credits or abs(sum(c for c in credits if c is not None) - total) > Decimal(
            "1e-10"
        ) * len(shares):
            errors[checkout_id] = (total, credits)
    return errors


# --- the cases ---------------------------------------------------------------------------------
def t(case: int) -> datetime:
    return T0 + 2 * HOUR + case * MIN


@dataclass(frozen=True)
class Answers:
    """The adversarial cases' answers written down by hand, by checkout_id."""

    first_click: dict[str, str | None]  # click_id
    last_click: dict[str, str | None]  # click_id
    touches: dict[str, int]  # linear: rows (distinct qualifying clicks) of the checkout
    credits: dict[str, Decimal | None]  # linear: the credit of each of the checkout's rows


def adversarial_records(settings: Settings) -> tuple[list[Record], dict[int, str], Answers]:
    """The integration test's cases, the cases of the other models, the bad records of every
    reason, and the answers written down by hand."""
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
    # 16. A click for the late checkout below (sent once event time has moved past it).
    add_click("c16", u[16], "p16", t(16) - 5 * MIN)
    # 17. Descriptive fields absent, null or typed otherwise; amounts rounded half up, at the limit.
    add_checkout("co17-bare", u[17], "p17", t(17), total_amount=None, payment_method=None)
    plan[-1].value = {k: v for k, v in plan[-1].event.items() if k not in {"shipping_address", "ip_address"}}
    add_checkout(
        "co17-typed", u[17], "p17", t(17) + SEC, total_amount="12.345", user_agent=42, ip_address=True
    )
    add_checkout("co17-max", u[17], "p17", t(17) + 2 * SEC, total_amount=99999999.99)
    add_checkout("co17-zero", u[17], "p17", t(17) + 3 * SEC, total_amount=0, billing_address=["no", "array"])
    # 18. A click of exactly MAX_PAYLOAD_CHARS characters is accepted (one more is rejected below).
    big = click("c18", u[18], "p18", t(18) - MIN, url="")
    big["url"] = "é" * (settings.max_payload_chars - len(json.dumps(big, ensure_ascii=False)))
    plan.append(Record("clicks", big, 0, t(18) - MIN))
    big_payload = plan[-1].payload
    assert big_payload is not None
    assert len(big_payload) == settings.max_payload_chars
    add_checkout("co18", u[18], "p18", t(18))

    # The other models (cases 1-18 are theirs too; 15 has last_click's ties). "After the checkout"
    # is in its topic's send order and event time: each topic is read by a source of its own, so
    # whether the job sees the click before or after the checkout varies; updates of every model
    # are asserted in the randomized test.
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
    # 36. A checkout delivered again with other content (product, time, amount, user): the first
    # delivery wins every column, in every model; the copy's own clicks attribute nothing.
    add_click("c36", u[36], "p36", t(36) - 5 * MIN)
    add_click("c36-copy", u[37], "p36-copy", t(36) - 30 * MIN)
    add_checkout("co36", u[36], "p36", t(36), partition=1)
    add_checkout("co36", u[37], "p36-copy", t(36) + MIN, partition=0, delay=2 * SEC, total_amount=1)
    # 35. Ids of exactly ID_MAX_CHARS characters of 4 bytes: the widest keys (one more is rejected).
    add_click(widest_id("c35-"), u[35], "p35", t(35) - MIN)
    add_checkout(widest_id("co35-"), u[35], "p35", t(35))

    bad_at = t(3)
    ok_click = click("bad", u[21], "p21", bad_at)
    ok_checkout = checkout("bad", u[21], "p21", bad_at)
    bad = bad_records(ok_click, ok_checkout, settings.max_payload_chars, sent_at=bad_at)
    for i, (topic, value, reason) in enumerate(bad):
        plan.append(Record(topic, value, i % 2, bad_at, reason))

    # Event time moves past everything (a click and a checkout on each topic), then a checkout
    # arrives that the watermark has passed: late, yet attributed to the click still in state.
    last = max(r.send_at for r in plan)
    marker_at = last + MIN + timedelta(seconds=settings.out_of_orderness_seconds)
    plan.append(Record("clicks", click("wm-click", MARKER_USER, "wm", marker_at), 0, marker_at))
    plan.append(Record("checkouts", checkout("wm-checkout", MARKER_USER, "wm", marker_at), 0, marker_at))
    plan.append(Record("checkouts", checkout("co16-late", u[16], "p16", t(16)), 0, marker_at + SEC))
    # A producer whose clock is two hours ahead stamps its events and their Kafka records alike:
    # the job's own clock rejects them.
    now = datetime.now(UTC).replace(tzinfo=None)
    ahead = now.replace(microsecond=now.microsecond // 1000 * 1000) + 2 * HOUR  # Kafka's milliseconds
    for topic, event in (("clicks", click("bad-host-clock", u[21], "p21", ahead)),
                         ("checkouts", checkout("bad-host-clock", u[21], "p21", ahead))):  # fmt: skip
        plan.append(Record(topic, event, 1, ahead, "datetime_occured_in_future"))

    users = {u[k]: f"user-{k}" for k in range(1, USERS + 1) if k not in {10, 34}}
    first_click = {
        "co1": "c1", "co2": None, "co3": "c3", "co4": None, "co5": "c5-early", "co6": "c6",
        "co7": "c7-earlier", "co8": None, "co9": None, "co10": "c10", "co11": "c11",
        "co12-1": "c12-a", "co12-3": "c12-a", "co12-2": "c12-b", "co13": None, "co14": "c14",
        "co15": "c15-B", "co15-utf8": "c15-\uff21", "co16-late": "c16", "co18": "c18",
        "co25": "c25-early", "co26": "c26-earlier", "co27": "c27-a", "co28": "c28-a", "co28-up": "c28-a",
        "co29": "c29-a", "co30": "c30", "co31": "c31-lower", "co32-1": "c32-a", "co32-2": "c32-a",
        "co34": "c34-a", widest_id("co35-"): widest_id("c35-"), "co36": "c36",
    }  # fmt: skip
    last_click = {
        "co1": "c1", "co2": None, "co3": "c3", "co4": None, "co5": "c5-late", "co6": "c6",
        "co7": "c7-later", "co10": "c10", "co11": "c11", "co12-1": "c12-a", "co12-3": "c12-a",
        "co12-2": "c12-b", "co13": None, "co15": "c15-b", "co15-utf8": "c15-\U0001f600",
        "co16-late": "c16", "co25": "c25-late", "co26": "c26-late", "co27": "c27-d", "co28": "c28-c",
        "co28-up": "c28-c", "co29": "c29-b", "co30": "c30", "co31": "c31-upper", "co32-1": "c32-a",
        "co32-2": "c32-b", "co34": "c34-b", widest_id("co35-"): widest_id("c35-"), "co36": "c36",
    }  # fmt: skip
    touches = {
        "co1": 1, "co2": 0, "co3": 1, "co4": 0, "co5": 3, "co7": 2, "co8": 0, "co10": 1, "co11": 1,
        "co12-1": 1, "co12-3": 1, "co12-2": 1, "co13": 0, "co15": 3, "co15-utf8": 2, "co16-late": 1,
        "co17-bare": 0, "co25": 2, "co26": 2, "co27": 4, "co28": 3, "co28-up": 3, "co29": 2, "co30": 1,
        "co31": 2, "co32-1": 1, "co32-2": 2, "co33": 2, "co34": 2, widest_id("co35-"): 1, "co36": 1,
    }  # fmt: skip
    credits = {
        "co27": Decimal("2.5"), "co28": Decimal("3.3333333333333"), "co28-up": Decimal("6.6666666666667"),
        "co29": Decimal(checkout("co29", 0, "", t(29))["total_amount"]) / 2, "co33": None,
    }  # fmt: skip
    return plan, users, Answers(first_click, last_click, touches, credits)


@pytest.fixture(scope="module")
def adversarial(flink: LocalFlink) -> tuple[list[Record], dict[int, str], Answers, Outputs]:
    records, users, answers = adversarial_records(flink.settings)
    return records, users, answers, flink.run(records, users)


def test_the_reference_gives_the_answers_written_down_by_hand(flink: LocalFlink) -> None:
    records, users, answers = adversarial_records(flink.settings)
    expected = reference(records, users)
    first, last, linear = expected["first_click"], expected["last_click"], expected["linear"]
    assert {k: first[k].click_id for k in answers.first_click} == answers.first_click
    assert {k: last[k].click_id for k in answers.last_click} == answers.last_click
    assert first["co10"].user_name is None and first["co17-typed"].total_amount == Decimal("12.35")
    assert last["co34"].user_name is None and last["co34"].total_amount == first["co34"].total_amount
    rows = Counter(checkout_id for checkout_id, _ in linear)
    assert {k: rows[k] for k in answers.touches} == answers.touches
    assert all(t.touches == rows[t.checkout_id] for t in linear.values())
    assert {k: {t.credit for t in linear.values() if t.checkout_id == k} for k in answers.credits} == {
        k: {credit} for k, credit in answers.credits.items()
    }
    assert linear[("co30", "c30")].click_time == t(30) - 10 * MIN - 5 * SEC
    assert first["co30"].click_time == t(30) - 10 * MIN - 5 * SEC
    assert last["co30"].click_time == t(30) - 10 * MIN


@pytest.mark.parametrize("model", ATTRIBUTION_MODELS)
def test_adversarial_cases_match_the_reference_in_every_column(adversarial, model: str) -> None:
    records, users, _, out = adversarial
    expected = reference(records, users)[model]
    assert out.of(model) == expected, diff(expected, out.of(model))


def test_linear_credits_add_up_to_the_amount(adversarial) -> None:
    _, _, _, out = adversarial
    assert len(out.touches) > 20
    assert credit_errors(out.touches, out.attributed) == {}


def test_a_late_checkout_is_counted_late_and_attributed_to_the_click_in_state(adversarial) -> None:
    _, _, _, out = adversarial
    assert out.metrics[("late_events", "checkouts")] == 1
    assert ("late_events", "clicks") not in out.metrics
    assert out.attributed["co16-late"].click_id == "c16"


def test_every_bad_record_is_dead_lettered_with_its_reason_and_payload(flink, adversarial) -> None:
    records, _, _, out = adversarial
    limit = flink.settings.max_payload_chars
    expected = {
        (r.topic, r.partition, r.offset): {
            "source_topic": r.topic,
            "source_partition": r.partition,
            "source_offset": r.offset,
            "reason": r.reason,
            "payload": (r.payload or "").replace("\x00", "")[:limit],
            "payload_chars": None if r.payload is None else len(r.payload),
            "kafka_timestamp": r.send_at,
        }
        for r in records
        if r.reason
    }
    actual = {
        key: {**row, "kafka_timestamp": timestamp(row["kafka_timestamp"])}
        for key, row in out.dead_letters.items()
    }
    assert actual.keys() == expected.keys()
    for key, row in expected.items():
        assert actual[key] == row, key
    assert (
        len(actual[next(k for k, r in expected.items() if r["reason"] == "payload_too_large")]["payload"])
        == limit
    )
    # ... and none of them is attributed.
    bad_ids = {"bad", "bad-nouser", "bad-fut", "bad-amt", "bad-huge", "bad-neg", "bad-clock"}
    bad_ids.add("bad-host-clock")
    assert not bad_ids & (out.attributed.keys() | out.last_click.keys() | {c for c, _ in out.touches})


def test_the_metrics_count_checkouts_attribution_lateness_and_rejects(adversarial) -> None:
    records, users, _, out = adversarial
    counted = counters(out)
    assert counted == expected_metrics(records, users, Counter({"checkouts": 1}))
    assert counted[("checkouts", "unknown")] >= 2  # co10 and the markers
    # Every row handed to the sink was observed by the latency histogram.
    assert {a.checkout_time for a in out.attributed.values()} <= set(out.latency_observed)


def test_randomized_stream_matches_the_reference(flink: LocalFlink) -> None:
    """Generated traffic (sessions, repeat purchases, stale and orphan checkouts, unknown users,
    timestamps up to 5 s out of order) on random partitions."""
    shape = TrafficShape(users=40, products=15, jitter_seconds=5.0, repeat_purchase_probability=0.3)
    events = list(simulated_events(7, 3000, datetime(2024, 5, 1, 8), events_per_second=0.5, shape=shape))
    rng = random.Random(3)
    start = datetime(2024, 5, 1, 8)
    records = [
        Record(topic, event, rng.randrange(2), start + i * 2 * SEC) for i, (topic, event) in enumerate(events)
    ]
    users = {i: f"user-{i}" for i in range(1, shape.users + 1)}
    expected = reference(records, users)
    first, last, linear = expected["first_click"], expected["last_click"], expected["linear"]
    attributed = sum(1 for a in first.values() if a.click_id)
    # The mix is meaningful: both outcomes and unknown users are present; the models differ.
    assert 0.3 * len(first) < attributed < 0.95 * len(first), (attributed, len(first))
    assert any(a.user_name is None for a in first.values())
    assert sum(first[k].click_id != a.click_id for k, a in last.items()) > 0.1 * attributed
    assert len({c for c, _ in linear}) == attributed and max(t.touches for t in linear.values()) >= 3

    out = flink.run(records, users)
    assert not (mismatched := mismatches(expected, out)), mismatched
    # Not only first answers: later clicks updated rows of the ranked models (last_click had
    # hundreds of updates in a run of this stream, first_click fewer; linear only adds rows).
    assert all(out.retracted[MODEL_SINKS[m]] > 0 for m in ("first_click", "last_click")), out.retracted
    assert credit_errors(out.touches, out.attributed) == {}
    assert counters(out) == expected_metrics(records, users, Counter())  # nothing late: 5 s < 15 s


def test_settings_reach_the_rule(flink: LocalFlink) -> None:
    """A shorter window: the same bounds, now 30 minutes. The default models, first_click only:
    the other models' sinks get nothing."""
    settings = job_settings(Path(flink.settings.stack_dir), ATTRIBUTION_WINDOW_SECONDS="1800")
    assert settings.models == ("first_click",)
    records = [
        Record("clicks", click("in", 1, "p", T0 - 30 * MIN), 0, T0 - 30 * MIN),
        Record("clicks", click("out", 2, "p", T0 - 30 * MIN - MS), 0, T0 - 30 * MIN - MS),
        Record("checkouts", checkout("co-in", 1, "p", T0), 0, T0),
        Record("checkouts", checkout("co-out", 2, "p", T0), 0, T0),
    ]
    local = LocalFlink(settings, flink.test_jar, flink.workdir / "window")
    out = local.run(records, {})
    assert {k: a.click_id for k, a in out.attributed.items()} == {"co-in": "in", "co-out": None}
    assert parse_time(fmt(T0)) == out.attributed["co-in"].checkout_time
    assert out.last_click == {} and out.touches == {}
    written = local.workdir / f"run-{local.runs}" / "out"
    for sink in (MODEL_SINKS["last_click"], MODEL_SINKS["linear"]):
        assert not [p for p in (written / sink).rglob("*") if p.is_file()], sink
