"""The result tables' triggers on their own, in the real Postgres: whatever order the job's upserts
arrive in (a replay, a duplicate after its state expired), a row never gets worse; and the linear
model's view."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal

import psycopg2
import pytest

from attribution.config import Settings
from attribution.models import MODELS

pytestmark = pytest.mark.integration
T = datetime(2024, 7, 1, 12, 0, 0)


Upsert = Callable[[str, str | None, datetime | None, str | None], tuple]


@pytest.fixture
def upsert(settings: Settings) -> Iterator[Upsert]:
    """Writes a row as the JDBC sink does (INSERT ... ON CONFLICT DO UPDATE) and returns it as stored."""
    conn = psycopg2.connect(settings.psycopg_dsn())
    conn.autocommit = True

    def write(
        checkout_id: str, click_id: str | None, click_time: datetime | None, user_name: str | None
    ) -> tuple:
        with conn.cursor() as cur:
            cur.execute(
                f"""INSERT INTO {settings.sink_table}
                        (checkout_id, user_id, user_name, click_id, product_id, checkout_time, click_time)
                    VALUES (%s, 1, %s, %s, 'p', %s, %s)
                    ON CONFLICT (checkout_id) DO UPDATE SET user_name = EXCLUDED.user_name,
                        click_id = EXCLUDED.click_id, click_time = EXCLUDED.click_time""",
                (checkout_id, user_name, click_id, T, click_time),
            )
            cur.execute(
                f"SELECT click_id, click_time, user_name FROM {settings.sink_table} WHERE checkout_id = %s",
                (checkout_id,),
            )
            return cur.fetchall()[0]

    yield write
    conn.close()


def new_id() -> str:
    return f"trigger-{uuid.uuid4().hex[:8]}"


def test_an_earlier_click_replaces_a_later_one_but_not_the_reverse(upsert: Upsert) -> None:
    checkout = new_id()
    early, late = T.replace(minute=0, second=1), T.replace(minute=0, second=2)
    assert upsert(checkout, "b", late, "ann") == ("b", late, "ann")
    assert upsert(checkout, "a", early, "ann") == ("a", early, "ann")
    assert upsert(checkout, "b", late, "ann") == ("a", early, "ann")  # a replayed worse write


def test_a_null_click_never_replaces_a_click(upsert: Upsert) -> None:
    checkout = new_id()
    assert upsert(checkout, None, None, "ann") == (None, None, "ann")
    assert upsert(checkout, "a", T, "ann") == ("a", T, "ann")  # a click replaces "none"
    assert upsert(checkout, None, None, "ann") == ("a", T, "ann")


def test_a_tie_on_time_goes_to_the_smaller_click_id_in_byte_order(upsert: Upsert) -> None:
    checkout = new_id()
    # Byte order: 'B' (0x42) < 'a' (0x61); most linguistic collations put 'a' first.
    assert upsert(checkout, "a", T, "ann") == ("a", T, "ann")
    assert upsert(checkout, "B", T, "ann") == ("B", T, "ann")
    assert upsert(checkout, "a", T, "ann") == ("B", T, "ann")


def test_a_known_user_name_is_kept_when_a_later_write_has_none(upsert: Upsert) -> None:
    checkout = new_id()
    assert upsert(checkout, "a", T, "ann") == ("a", T, "ann")
    assert upsert(checkout, "a", T, None) == ("a", T, "ann")
    assert upsert(checkout, "a", T, "bob") == ("a", T, "bob")  # a renamed user is taken


def test_ties_ignore_a_linguistic_database_collation(settings: Settings) -> None:
    """The Compose image's databases default to en_US: the trigger compares COLLATE "C" anyway.
    Needs the OS locale en_US.UTF-8 (.ci/run generates it). Everything it changes is rolled back."""
    conn = psycopg2.connect(settings.psycopg_dsn())
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(
                    "CREATE COLLATION IF NOT EXISTS test_en_us (provider = libc, locale = 'en_US.utf8')"
                )
            except psycopg2.Error as error:
                pytest.skip(f"no en_US.UTF-8 locale on this machine ({error.pgerror}); .ci/run installs it")
            cur.execute("""SELECT 'B' < 'a' COLLATE test_en_us, 'B' < 'a' COLLATE "C" """)
            assert cur.fetchall()[0] == (False, True)  # the two orders differ on these ids
            checkout = new_id()
            cur.execute(f"DROP VIEW {settings.model_comparison_view}")  # it reads the column
            cur.execute(
                f"ALTER TABLE {settings.sink_table} ALTER COLUMN click_id TYPE VARCHAR COLLATE test_en_us"
            )
            for click in ("a", "B", "a"):
                cur.execute(
                    f"""INSERT INTO {settings.sink_table} (checkout_id, click_id, click_time, checkout_time)
                        VALUES (%s, %s, %s, %s) ON CONFLICT (checkout_id) DO UPDATE
                        SET click_id = EXCLUDED.click_id, click_time = EXCLUDED.click_time""",
                    (checkout, click, T, T),
                )
            cur.execute(f"SELECT click_id FROM {settings.sink_table} WHERE checkout_id = %s", (checkout,))
            assert cur.fetchall()[0] == ("B",)
    finally:
        conn.rollback()  # the view, the column's collation, the rows: as they were
        conn.close()


def test_last_click_keeps_the_later_click_and_never_a_null(settings: Settings) -> None:
    checkout = new_id()
    early, late = T.replace(second=1), T.replace(second=2)
    written = []
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        for click_id, click_time in [("a", late), ("z", early), (None, None), ("b", late)]:
            cur.execute(
                f"""INSERT INTO {settings.model_table("last_click")}
                        (checkout_id, user_id, click_id, product_id, checkout_time, click_time)
                    VALUES (%s, 1, %s, 'p', %s, %s)
                    ON CONFLICT (checkout_id) DO UPDATE SET
                        click_id = EXCLUDED.click_id, click_time = EXCLUDED.click_time""",
                (checkout, click_id, T, click_time),
            )
            cur.execute(
                f"SELECT click_id FROM {settings.model_table('last_click')} WHERE checkout_id = %s",
                (checkout,),
            )
            written.append(cur.fetchall()[0][0])
    conn.close()
    # z is earlier: kept out; NULL never replaces a click; b ties a in time and is larger.
    assert written == ["a", "a", "a", "b"]


def test_linear_view_shares_the_amount_over_the_clicks_present_and_deletes_through(
    settings: Settings,
) -> None:
    """The job writes each touch (a repeat: the same row); the view counts a checkout's clicks
    when read, each at its earliest time, and rounds half up at 13 places as Flink divides
    DECIMAL(10, 2) by INT. DELETE on the view deletes from the table."""
    checkout = new_id()

    def touch(click_id: str, second: int, amount: str = "10.00", of: str = checkout) -> None:
        cur.execute(
            f"""INSERT INTO {settings.model_written_table("linear")}
                    (checkout_id, click_id, click_time, total_amount, product_id, checkout_time)
                VALUES (%s, %s, %s, %s, 'p', %s)
                ON CONFLICT (checkout_id, click_id, click_time)
                DO UPDATE SET total_amount = EXCLUDED.total_amount""",
            (of, click_id, T.replace(second=second), Decimal(amount), T),
        )

    def served(of: str = checkout) -> list[tuple]:
        cur.execute(
            f"SELECT click_id, click_time, credit, touches FROM {settings.model_table('linear')} "
            "WHERE checkout_id = %s ORDER BY click_id",
            (of,),
        )
        return cur.fetchall()

    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        touch("a", 5)
        touch("b", 6)
        assert [(c, n) for _, _, c, n in served()] == [(Decimal("5.0000000000000"), 2)] * 2
        touch("c", 7)
        touch("a", 9)  # the same click again, later: still one touch, at its earliest time
        touch("a", 5, amount="99.00")  # a changed redelivery keeps the first amount
        rows = served()
        assert [r[0] for r in rows] == ["a", "b", "c"] and rows[0][1] == T.replace(second=5)
        assert {(c, n) for _, _, c, n in rows} == {(Decimal("3.3333333333333"), 3)}
        cur.execute(f"DELETE FROM {settings.model_table('linear')} WHERE checkout_id = %s", (checkout,))
        assert served() == []

        # Half up: 20.00 / 3 = 6.66666666666666..., 0.01 / 4096 = 0.00000244140625 exactly.
        thirds, halves = new_id(), new_id()
        for i in range(3):
            touch(f"c{i}", i, amount="20.00", of=thirds)
        cur.execute(
            f"""INSERT INTO {settings.model_written_table("linear")}
                    (checkout_id, click_id, click_time, total_amount)
                SELECT %s, 'c' || i, %s, 0.01 FROM generate_series(1, 4096) AS i""",
            (halves, T),
        )
        assert {c for _, _, c, _ in served(thirds)} == {Decimal("6.6666666666667")}
        assert {(c, n) for _, _, c, n in served(halves)} == {(Decimal("0.0000024414063"), 4096)}
    conn.close()


def test_model_comparison_view_reads_each_model_over_the_same_checkouts(settings: Settings) -> None:
    """`make status` and the Grafana panel read this view. Every row it sees is written here, in a
    transaction that is rolled back. linear was enabled later than first_click (its first
    checkout is at T): checkouts before that are out of its denominator."""
    conn = psycopg2.connect(settings.psycopg_dsn())
    at = {m: T.replace(hour=11, minute=60 - m) for m in (2, 4, 10, 20)}  # m minutes before T
    try:
        with conn.cursor() as cur:
            touches_models = [m.name for m in MODELS.values() if m.shape == "touches"]
            for table in settings.model_written_tables:
                cur.execute(f"DELETE FROM {table}")
            Row = tuple[str, str | None, datetime | None, datetime]
            one_click: dict[str, list[Row]] = {
                settings.sink_table: [
                    ("c0", None, None, T.replace(month=6, day=30)),  # a day before linear
                    ("c1", "a", at[10], T),
                    ("c2", "b", at[20], T),
                ],
                settings.model_table("last_click"): [("c1", "x", at[4], T), ("c2", "y", at[2], T)],
            }
            amounts = {"c0": "5.00", "c1": "10.00", "c2": "20.00", "c3": "30.00"}
            for table, rows in one_click.items():
                for checkout, click, click_time, checkout_time in [*rows, ("c3", None, None, T)]:
                    cur.execute(
                        f"""INSERT INTO {table}
                                (checkout_id, click_id, click_time, checkout_time, total_amount)
                            VALUES (%s, %s, %s, %s, %s)""",
                        (checkout, click, click_time, checkout_time, Decimal(amounts[checkout])),
                    )
            touches = [("c1", "a", at[10]), ("c1", "x", at[4]), ("c2", "b", at[20])]
            for model in touches_models:  # each its own copy of the same touches
                for checkout, click, click_time in touches:
                    cur.execute(
                        f"""INSERT INTO {settings.model_written_table(model)}
                                (checkout_id, click_id, click_time, total_amount, product_id, checkout_time)
                            VALUES (%s, %s, %s, %s, 'p', %s)""",
                        (checkout, click, click_time, Decimal(amounts[checkout]), T),
                    )
            cur.execute(
                "SELECT model, checkouts, attributed_checkouts, attributed_share, attributed_revenue,"
                " avg_minutes_click_to_checkout, clicks_credited_per_checkout"
                f" FROM {settings.model_comparison_view} ORDER BY model"
            )
            # Every touches model credits the same touches: the same figures, revenue to the cent.
            assert cur.fetchall() == sorted(
                [
                    ("first_click", 4, 2, Decimal("0.5"), Decimal("30"), Decimal("15"), Decimal("1")),
                    ("last_click", 3, 2, Decimal("0.6667"), Decimal("30"), Decimal("3"), Decimal("1")),
                    *[
                        (m, 3, 2, Decimal("0.6667"), Decimal("30"), Decimal("11.3"), Decimal("1.5"))
                        for m in touches_models
                    ],
                ]
            )
    finally:
        conn.rollback()
        conn.close()


def test_the_first_delivery_of_a_checkout_wins_whatever_order_its_rows_come_in(settings: Settings) -> None:
    """The job keeps a checkout's first delivery (Kafka timestamp, partition, offset) while its
    state lasts; after that a later delivery with other content is written as the job sees it,
    and a replay may write an earlier delivery after a later one. The first delivery wins every
    column in every model's table, and its own better clicks are still taken."""
    checkout = new_id()
    minute = T.replace(minute=1) - T
    first = (1, "p", Decimal("10.00"), T, T + minute, 1, 3)  # user, product, amount, time, delivery
    later = (2, "q", Decimal("20.00"), T + minute, T + 2 * minute, 0, 7)
    columns = (
        "user_id, product_id, total_amount, checkout_time, delivered_at, delivery_partition, "
        "delivery_offset, click_id, click_time"
    )
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        stored = {}
        for table in (settings.sink_table, settings.model_table("last_click")):
            write = f"""INSERT INTO {table} (checkout_id, {columns}) VALUES (%s, {", ".join(["%s"] * 9)})
                        ON CONFLICT (checkout_id) DO UPDATE SET ({columns}) =
                        ({", ".join(f"EXCLUDED.{c.strip()}" for c in columns.split(","))})"""
            cur.execute(write, (checkout, *later, "b", T - 30 * minute))  # the later delivery first
            cur.execute(write, (checkout, *first, None, None))  # the first: no click yet
            cur.execute(write, (checkout, *later, "b", T - 30 * minute))  # the later one again
            cur.execute(write, (checkout, *first, "a", T - 5 * minute))  # the first's click
            cur.execute(write, (checkout, *first, "z", T - 6 * minute))  # and an earlier one
            cur.execute(f"SELECT {columns} FROM {table} WHERE checkout_id = %s", (checkout,))
            stored[table] = cur.fetchone()
        assert stored[settings.sink_table] == (*first, "z", T - 6 * minute)
        assert stored[settings.model_table("last_click")] == (*first, "a", T - 5 * minute)

        touch = f"""INSERT INTO {settings.model_written_table("linear")} (checkout_id, click_id, click_time,
                        product_id, total_amount, checkout_time, delivered_at, delivery_partition,
                        delivery_offset)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (checkout_id, click_id, click_time) DO UPDATE SET
                        (product_id, total_amount, checkout_time, delivered_at, delivery_partition,
                         delivery_offset) = (EXCLUDED.product_id, EXCLUDED.total_amount,
                         EXCLUDED.checkout_time, EXCLUDED.delivered_at, EXCLUDED.delivery_partition,
                         EXCLUDED.delivery_offset)"""
        cur.execute(touch, (checkout, "b", T - 30 * minute, *later[1:]))  # only the later's
        cur.execute(touch, (checkout, "s", T - 8 * minute, *later[1:]))  # shared: later, then first
        cur.execute(touch, (checkout, "a", T - 5 * minute, *first[1:]))
        cur.execute(touch, (checkout, "s", T - 8 * minute, *first[1:]))
        cur.execute(touch, (checkout, "s", T - 8 * minute, *later[1:]))  # and the later again
        cur.execute(
            f"SELECT click_id, credit, product_id FROM {settings.model_table('linear')}"
            " WHERE checkout_id = %s ORDER BY 1",
            (checkout,),
        )
        assert cur.fetchall() == [
            ("a", Decimal("5.0000000000000"), "p"),
            ("s", Decimal("5.0000000000000"), "p"),
        ]
    conn.close()
