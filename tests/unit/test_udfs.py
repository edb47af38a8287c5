"""The job's Java functions (udf/), run by Flink itself: a local batch TableEnvironment in this
process's JVM, no cluster or broker. The integration tests cover them again inside the job."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest
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
    """`sql` over a table `t(i, payload)` holding the payloads; rows in payload order, without i."""
    schema = DataTypes.ROW(
        [DataTypes.FIELD("i", DataTypes.INT()), DataTypes.FIELD("payload", DataTypes.STRING())]
    )
    t_env.create_temporary_view("t", t_env.from_elements(list(enumerate(payloads)), schema))
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
    sql = "SELECT i, CHAR_LENGTH(payload), f.payload_chars FROM t, LATERAL TABLE(JSON_FIELDS(payload)) AS f"
    rows = query(t_env, sql, payloads)
    assert [r[0] for r in rows] == [r[1] for r in rows] == [0, 3, 3, 49]


def test_consecutive_records_are_not_mistaken_for_each_other(t_env: TableEnvironment) -> None:
    # The per-thread memo of the last payload must never answer for a different record.
    payloads = [json.dumps({"a": n, "b": "same"}) for n in range(200)] + ['{"a": 0, "b": "same"}']
    rows = query(t_env, FIELDS, payloads)
    assert [r[3] for r in rows] == [str(n) for n in range(200)] + ["0"]


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
        "SELECT i, COUNTED(payload, 'm', 'l', 'v'), COUNTED(payload, 'm', 'reason') FROM t",
        ["x", None],
    )
    assert rows == [("x", "x"), (None, None)]
