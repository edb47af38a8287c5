from collections import Counter
from datetime import datetime, timedelta

from datagen.gen_fake_data import TrafficShape, format_time, parse_args, simulated_events
from tests.reference import attribute, parse_time

START = datetime(2024, 1, 1, 12, 0, 0)
ORIGINAL_CLICK_FIELDS = {
    "click_id",
    "user_id",
    "product_id",
    "product",
    "price",
    "url",
    "user_agent",
    "ip_address",
    "datetime_occured",
}
ORIGINAL_CHECKOUT_FIELDS = {
    "checkout_id",
    "user_id",
    "product_id",
    "payment_method",
    "total_amount",
    "shipping_address",
    "billing_address",
    "user_agent",
    "ip_address",
    "datetime_occured",
}


def events(seed: int = 1, count: int = 3000) -> list[tuple[str, dict]]:
    return list(simulated_events(seed, count, START, events_per_second=1.0))


def test_same_seed_same_events_different_seed_different_events() -> None:
    assert events(1, 500) == events(1, 500)
    assert events(1, 500) != events(2, 500)


def test_events_carry_the_original_fields_and_time_format() -> None:
    for topic, event in events(count=300):
        expected = ORIGINAL_CLICK_FIELDS if topic == "clicks" else ORIGINAL_CHECKOUT_FIELDS
        assert set(event) == expected
        assert len(event["datetime_occured"]) == len("2024-01-01 12:00:00.000")
        assert format_time(parse_time(event["datetime_occured"])) == event["datetime_occured"]


def test_timestamps_are_out_of_order_by_at_most_the_jitter() -> None:
    jitter = TrafficShape().jitter_seconds
    latest = START - timedelta(days=1)
    for _, event in events():
        at = parse_time(event["datetime_occured"])
        assert at >= latest - timedelta(seconds=jitter)
        latest = max(latest, at)


def test_traffic_mixes_every_kind_of_checkout() -> None:
    stream = events(count=6000)
    topics = Counter(topic for topic, _ in stream)
    assert topics["clicks"] > topics["checkouts"] > 0
    shape = TrafficShape()
    users = {i: f"u{i}" for i in range(1, shape.users + 1)}
    result = attribute(
        [e for t, e in stream if t == "clicks"], [e for t, e in stream if t == "checkouts"], users
    )
    assert any(r.click_id for r in result.values())
    assert any(r.click_id is None for r in result.values())
    assert any(r.user_name is None for r in result.values())  # unknown users
    pairs = Counter((r.user_id, r.product_id) for r in result.values())
    assert max(pairs.values()) > 1  # repeat purchases


def test_cli_defaults_and_validation() -> None:
    args = parse_args([])
    assert args.rate == 100.0 and args.count is None and args.seed == 42
    assert parse_args(["--count", "10", "--rate", "5000"]).count == 10


def test_uuid4_text_is_the_standard_library_uuid4():
    import random
    import uuid

    from datagen.gen_fake_data import uuid4_text

    rng = random.Random(7)
    for _ in range(10_000):
        bits = rng.getrandbits(128)
        assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))
