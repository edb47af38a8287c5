"""Records the job must reject, one or more for every reject reason, with the reason: shared by the
rule tests (a local Flink) and the integration test (the real connectors and Postgres)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from attribution.config import ID_MAX_CHARS
from tests.events import fmt


def random_id(length: int, seed: int) -> str:
    """An id Postgres cannot compress: random letters and digits (a repetitive one it can)."""
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(length))


def widest_id(prefix: str) -> str:
    """An id of exactly ID_MAX_CHARS characters of 4 bytes each in UTF-8: the largest key accepted."""
    return prefix + "\U0001f600" * (ID_MAX_CHARS - len(prefix))


def bad_records(
    ok_click: dict, ok_checkout: dict, max_payload_chars: int, sent_at: datetime
) -> list[tuple[str, dict | str | None, str]]:
    """(topic, record value, reject reason); dict values are sent as JSON, text as it is, None as a
    tombstone. `ok_click`/`ok_checkout`: valid events the bad ones are variations of; `sent_at`:
    the Kafka timestamp the records will carry."""
    two_hours_ahead = fmt(sent_at + timedelta(hours=2))
    too_big = {**ok_click, "click_id": "bad-big", "url": "\U0001f600" + "x" * max_payload_chars}
    return [
        ("clicks", "not json at all", "not_json_object"),
        ("clicks", '{"click_id": "x", "user_id": ', "not_json_object"),
        ("clicks", "[1, 2, 3]", "not_json_object"),
        ("clicks", '{"click_id": "trailing"} {"x": 1}', "not_json_object"),
        ("clicks", '{"click_id": "raw\x00nul"}', "not_json_object"),  # stored without the NUL
        ("clicks", "", "empty_payload"),
        ("clicks", None, "empty_payload"),  # a tombstone
        ("clicks", {**ok_click, "click_id": "bad-nul", "url": "a\u0000b"}, "nul_character"),
        ("clicks", too_big, "payload_too_large"),  # stored cut to MAX_PAYLOAD_CHARS
        ("clicks", {k: v for k, v in ok_click.items() if k != "click_id"}, "missing_click_id"),
        ("clicks", {**ok_click, "click_id": "  "}, "missing_click_id"),
        ("checkouts", {k: v for k, v in ok_checkout.items() if k != "checkout_id"}, "missing_checkout_id"),
        ("checkouts", {**ok_checkout, "checkout_id": "bad-nouser", "user_id": None}, "missing_user_id"),
        ("clicks", {**ok_click, "click_id": "bad-user", "user_id": "abc"}, "invalid_user_id"),
        ("checkouts", {k: v for k, v in ok_checkout.items() if k != "product_id"}, "missing_product_id"),
        (
            "clicks",
            {k: v for k, v in ok_click.items() if k != "datetime_occured"},
            "missing_datetime_occured",
        ),
        (
            "clicks",
            {**ok_click, "click_id": "bad-null-ts", "datetime_occured": None},
            "missing_datetime_occured",
        ),
        (
            "clicks",
            {**ok_click, "click_id": "bad-ts", "datetime_occured": "yesterday"},
            "invalid_datetime_occured",
        ),
        *(
            (
                "clicks",
                {**ok_click, "click_id": f"bad-ts-{n}", "datetime_occured": text},
                "invalid_datetime_occured",
            )
            for n, text in enumerate(
                [
                    "2024-02-30 10:00:00.000",
                    "2024-05-01T10:00:00.000",
                    "2024-05-01 24:00:00.000",
                    "2024-05-01 10:00",
                ]
            )
        ),
        (
            "clicks",
            {**ok_click, "click_id": "bad-fut", "datetime_occured": "2999-01-01 00:00:00.000"},
            "datetime_occured_in_future",
        ),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-fut", "datetime_occured": "2999-01-01 00:00:00.000"},
            "datetime_occured_in_future",
        ),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-amt", "total_amount": "abc"},
            "invalid_total_amount",
        ),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-huge", "total_amount": 1e12},
            "invalid_total_amount",
        ),
        ("checkouts", {**ok_checkout, "checkout_id": "bad-neg", "total_amount": -5}, "negative_total_amount"),
        # Read as 12.00 by Flink's TRY_CAST; rounds to 100000000.00, which DECIMAL(10, 2) cannot hold.
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-amt-x", "total_amount": "12a"},
            "invalid_total_amount",
        ),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-amt-round", "total_amount": "99999999.995"},
            "invalid_total_amount",
        ),
        ("checkouts", {**ok_checkout, "checkout_id": "bad-user-frac", "user_id": "1.5"}, "invalid_user_id"),
        # The reasons shared by both topics, on the checkouts topic too.
        ("checkouts", "not json at all", "not_json_object"),
        ("checkouts", '{"checkout_id": "raw\x00nul"}', "not_json_object"),
        ("checkouts", "", "empty_payload"),
        ("checkouts", None, "empty_payload"),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-nul", "billing_address": "a\u0000b"},
            "nul_character",
        ),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-big", "user_agent": "x" * max_payload_chars},
            "payload_too_large",
        ),
        ("checkouts", {**ok_checkout, "checkout_id": "  "}, "missing_checkout_id"),
        # Ids longer than a key of the output tables can hold; one character over the limit.
        ("clicks", {**ok_click, "click_id": random_id(3000, 1)}, "click_id_too_long"),
        ("checkouts", {**ok_checkout, "checkout_id": random_id(3000, 2)}, "checkout_id_too_long"),
        ("checkouts", {**ok_checkout, "checkout_id": widest_id("bad-") + "x"}, "checkout_id_too_long"),
        ("clicks", {**ok_click, "click_id": widest_id("bad-") + "x"}, "click_id_too_long"),
        # A device clock two hours ahead (its Kafka timestamp right), on both topics.
        (
            "clicks",
            {**ok_click, "click_id": "bad-clock", "datetime_occured": two_hours_ahead},
            "datetime_occured_in_future",
        ),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-clock", "datetime_occured": two_hours_ahead},
            "datetime_occured_in_future",
        ),
        # The rowtime of an unusable record is 1970-01-01 00:00:00: no event time at or before it.
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-epoch", "datetime_occured": "1970-01-01 00:00:00.000"},
            "datetime_occured_too_early",
        ),
        (
            "clicks",
            {**ok_click, "click_id": "bad-old", "datetime_occured": "0001-01-01 00:00:00.000"},
            "datetime_occured_too_early",
        ),
        ("checkouts", {**ok_checkout, "checkout_id": "bad-user", "user_id": "abc"}, "invalid_user_id"),
        (
            "checkouts",
            {k: v for k, v in ok_checkout.items() if k != "datetime_occured"},
            "missing_datetime_occured",
        ),
        (
            "checkouts",
            {**ok_checkout, "checkout_id": "bad-ts", "datetime_occured": "2024-02-30 10:00:00.000"},
            "invalid_datetime_occured",
        ),
    ]
