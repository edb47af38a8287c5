"""The job's Java functions (udf/), run by Flink itself: a local batch TableEnvironment in this
process's JVM, no cluster or broker. The integration tests cover them again inside the job."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pytest
import requests
from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

from attribution.config import Settings
from attribution.deps import client_env
from attribution.sql import render, statements


@pytest.fixture(scope="module")
def t_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TableEnvironment]:
    settings = Settings.from_env({"STACK_DIR": str(tmp_path_factory.mktemp("stack"))})
    # The first TableEnvironment starts the JVM, with the jars of FLINK_LIB_DIR (the UDF jar too).
    os.environ.update(client_env(settings))
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    for template in ("functions/json.sql", "functions/metrics.sql"):  # the job's own declarations
        for statement in statements(render(template, settings)):
            env.execute_sql(statement)
    yield env


def query(t_env: TableEnvironment, sql: str, payloads: Sequence[str | None]) -> list[tuple]:
    """`sql` over a table `t(i, payload)` holding the payloads as UTF-8 bytes (as the Kafka sources
    read them); rows in payload order, without i."""
    schema = DataTypes.ROW(
        [DataTypes.FIELD("i", DataTypes.INT()), DataTypes.FIELD("payload", DataTypes.BYTES())]
    )
    encoded = [(i, None if p is None else bytearray(p.encode())) for i, p in enumerate(payloads)]
    t_env.create_temporary_view("t", t_env.from_elements(encoded, schema))
    try:
        rows = list(t_env.execute_sql(sql).collect())
    finally:
        t_env.drop_temporary_view("t")
    return [tuple(r)[1:] for r in sorted(rows, key=lambda r: r[0])]


FIELDS = "SELECT i, f.* FROM t, LATERAL TABLE(JSON_FIELDS(payload, 'a', 'b')) AS f"


def test_json_fields_reads_top_level_scalars_as_json_value_does(t_env: TableEnvironment) -> None:
    rows = query(
        t_env,
        FIELDS,
        [
            '{"a": 1, "b": "x"}',
            '{"a": 10.50, "b": true, "c": 3}',
            '{"a": -1e3, "b": "  spaced  "}',
            '{"a": [1, 2], "b": {"x": 1}}',  # arrays and objects have no scalar value
            '{"a": null}',
            '{"b": "only b"}',
            '{"a": 1, "a": 2}',  # the last of duplicate keys wins
        ],
    )
    assert [r[3:] for r in rows] == [
        ("1", "x"),
        ("10.50", "true"),
        ("-1e3", "  spaced  "),
        (None, None),
        (None, None),
        (None, "only b"),
        ("2", None),
    ]
    assert all(r[1] is True and r[2] is False for r in rows)


def test_json_fields_describes_unusable_payloads(t_env: TableEnvironment) -> None:
    payloads = [
        "not json",
        '{"a": 1',
        "[1, 2]",
        '{"a": 1} {"b": 2}',  # trailing text
        '{"a": 1}   ',  # trailing whitespace is fine
        "",
        None,
        '{"a": "x\\u0000y"}',
        '{"a\\u0000": "y"}',
    ]
    rows = query(t_env, FIELDS, payloads)
    is_object = [r[1] for r in rows]
    has_nul = [r[2] for r in rows]
    assert is_object == [False, False, False, False, True, False, None, True, True]
    assert has_nul == [False, False, False, False, False, False, None, True, True]
    assert rows[6] == (None, None, None, None, None)  # NULL payload: a row of NULLs, never no row
    assert rows[7][3] == "x\x00y"


def test_payload_chars_counts_characters_as_char_length_does(t_env: TableEnvironment) -> None:
    payloads = ["", "abc", "é€😀", json.dumps({"a": "ü" * 40}, ensure_ascii=False)]
    sql = (
        "SELECT i, CHAR_LENGTH(CAST(payload AS STRING)), f.payload_chars"
        " FROM t, LATERAL TABLE(JSON_FIELDS(payload)) AS f"
    )
    rows = query(t_env, sql, payloads)
    assert [r[0] for r in rows] == [r[1] for r in rows] == [0, 3, 3, 49]


def test_consecutive_records_are_not_mistaken_for_each_other(t_env: TableEnvironment) -> None:
    # The per-thread memo of the last payload must never answer for a different record.
    payloads = [json.dumps({"a": n, "b": "same"}) for n in range(200)] + ['{"a": 0, "b": "same"}']
    rows = query(t_env, FIELDS, payloads)
    assert [r[3] for r in rows] == [str(n) for n in range(200)] + ["0"]


# The typed forms of JSON_FIELDS beside what they stand for: the SQL (trimmed, timestamp), or
# Python's reading of the field's text (int, decimal: stricter than Flink's TRY_CAST).
TYPED_FORMS = (
    "SELECT i, f.a, f.`a:trimmed`, NULLIF(TRIM(f.a), ''), f.`a:timestamp`, JSON_TIMESTAMP(payload, 'a'),"
    " f.`a:int`, f.`a:decimal(10,2)`"
    " FROM t, LATERAL TABLE(JSON_FIELDS(payload,"
    " 'a', 'a:trimmed', 'a:timestamp', 'a:int', 'a:decimal(10,2)')) AS f"
)
TYPED_VALUES = [
    *["12", " 12 ", "-7", "+3", "007", "1.5", "12a", "", "   ", "\t5\n", "2147483647", "2147483648"],
    *["-2147483649", "99999999.99", "99999999.995", "-99999999.994", "100000000", "12345678.9"],
    *["-0.001", "0.005", "1e3", "1E-2", "5e-999999999", "1e999999999", "x", "NaN", "Infinity"],
    *[" padded ", "\tx", "2024-03-01 10:00:00.5", " 2024-03-01 10:00:00"],
    *[10.5, -3, 0, 1e20, 2.675, True, None, [1], {"b": 1}],
]


def expected_int(text: str) -> int | None:
    try:
        number = int(text.strip(), 10)
    except ValueError:
        return None
    return number if -(2**31) <= number < 2**31 and "_" not in text else None


def expected_decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() >= 8:  # DECIMAL(10, 2): 8 integer digits
        return None
    rounded = number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return rounded if rounded.adjusted() < 8 else None


def test_json_fields_typed_forms(t_env: TableEnvironment) -> None:
    payloads = [json.dumps({"a": value}) for value in TYPED_VALUES] + ["not json", None]
    rows = query(t_env, TYPED_FORMS, payloads)
    for value, (text, trimmed, sql_trimmed, ts, sql_ts, number, amount) in zip(
        [*TYPED_VALUES, "not json", None], rows, strict=True
    ):
        assert (trimmed, ts) == (sql_trimmed, sql_ts), value
        assert number == (None if text is None else expected_int(text)), value
        assert amount == (None if text is None else expected_decimal(text)), value
    by_value = {str(v): r for v, r in zip(TYPED_VALUES, rows[: len(TYPED_VALUES)], strict=True)}
    assert by_value[" 12 "][1:] == ("12", "12", None, None, 12, Decimal("12.00"))
    assert by_value["99999999.995"][5:] == (None, None)  # rounds to 10^8: the sink cannot hold it
    assert by_value["x"][5:] == (None, None)  # TRY_CAST(... AS DECIMAL(10, 2)) gives 0.00
    assert by_value["2.675"][5:] == (None, Decimal("2.68"))


def test_json_fields_rejects_an_unknown_form(t_env: TableEnvironment) -> None:
    with pytest.raises(Exception, match="'a:float' is not 'name' or"):
        query(t_env, "SELECT i, f.* FROM t, LATERAL TABLE(JSON_FIELDS(payload, 'a:float')) AS f", ["{}"])


TIMESTAMPS = [
    ("2024-03-01 10:00:00.123", datetime(2024, 3, 1, 10, 0, 0, 123000)),
    ("2024-03-01 10:00:00", datetime(2024, 3, 1, 10, 0, 0)),
    ("2024-03-01 10:00:00.5", datetime(2024, 3, 1, 10, 0, 0, 500000)),
    ("2024-03-01 10:00:00.123999999", datetime(2024, 3, 1, 10, 0, 0, 123000)),  # kept to the ms
    ("2024-02-29 23:59:59.999", datetime(2024, 2, 29, 23, 59, 59, 999000)),
    ("2023-02-29 10:00:00.000", None),  # no such day
    ("2024-03-01T10:00:00.000", None),
    ("2024-03-01 24:00:00.000", None),
    ("2024-03-01 10:00", None),
    ("2024-03-01 10:00:00.", None),
    ("2024-03-01 10:00:00.12a", None),
    ("yesterday", None),
]


def test_json_timestamp_accepts_only_the_original_format(t_env: TableEnvironment) -> None:
    payloads = [json.dumps({"ts": text}) for text, _ in TIMESTAMPS] + ['{"other": 1}', "not json"]
    rows = query(t_env, "SELECT i, JSON_TIMESTAMP(payload, 'ts') FROM t", payloads)
    assert [r[0] for r in rows] == [expected for _, expected in TIMESTAMPS] + [None, None]


def test_counted_returns_its_value(t_env: TableEnvironment) -> None:
    rows = query(
        t_env,
        "SELECT i, COUNTED(text, 'm', 'l', 'v'), COUNTED(text, 'm', 'reason')"
        " FROM (SELECT i, CAST(payload AS STRING) AS text FROM t)",
        ["x", None],
    )
    assert rows == [("x", "x"), (None, None)]


def test_counted_counts_each_row_under_its_label(t_env: TableEnvironment) -> None:
    """The counters as Flink's REST API serves them from a running job (the Prometheus reporter
    reads the same metric group). A slow sequence 1, 2, 3, ...: its first four rows are labelled
    a, a, b and NULL, every later one `later`, and the job runs on while the counters are read."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for key, value in {
        "rest.port": str(port),
        "rest.bind-address": "127.0.0.1",
        "parallelism.default": "1",
    }.items():
        env.get_config().set(key, value)
    settings = Settings.from_env({})
    for statement in statements(render("functions/metrics.sql", settings)):
        env.execute_sql(statement)
    env.execute_sql(
        "CREATE TEMPORARY TABLE sequence (x INT) WITH ('connector' = 'datagen', 'rows-per-second' = '20', "
        "'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '1000000')"
    )
    env.execute_sql("CREATE TEMPORARY TABLE dropped (v STRING) WITH ('connector' = 'blackhole')")
    result = env.execute_sql(
        "INSERT INTO dropped SELECT COUNTED(CASE WHEN x <= 2 THEN 'a' WHEN x = 3 THEN 'b' WHEN x = 4"
        " THEN CAST(NULL AS STRING) ELSE 'later' END, 'seen', 'kind') FROM sequence"
    )
    client = result.get_job_client()
    rest = f"http://127.0.0.1:{port}/jobs/{client.get_job_id()}"
    counted: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 60
        while counted.get("later", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
            counted = counters(rest, "seen")
    finally:
        client.cancel().result()
    assert counted.pop("later", 0) >= 1, counted
    assert counted == {"a": 2, "b": 1, "": 1}


def counters(rest: str, metric: str) -> dict[str, int]:
    """label value -> count of the counter attribution.kind.<label value>.<metric>, summed over
    the job's vertices and subtasks."""
    try:
        vertices = requests.get(rest, timeout=5).json()["vertices"]
    except (requests.RequestException, KeyError):
        return {}  # not running yet
    found: dict[str, int] = {}
    for vertex in vertices:
        url = f"{rest}/vertices/{vertex['id']}/metrics"
        names = [m["id"] for m in requests.get(url, timeout=5).json() if m["id"].endswith(f".{metric}")]
        if names:
            for reading in requests.get(url, params={"get": ",".join(names)}, timeout=5).json():
                label = reading["id"].split(".attribution.kind.", 1)[1].removesuffix(f".{metric}")
                found[label] = found.get(label, 0) + int(reading["value"])
    return found
