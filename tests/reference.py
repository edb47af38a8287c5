"""An independent, deliberately naive implementation of the attribution models, to compare against.

A click qualifies for a checkout if it has the same user_id and product_id and
checkout_time - 1h <= click_time <= checkout_time. A checkout_id delivered twice is one checkout,
its first delivery.

- first_click (attribute): per checkout, the earliest qualifying click (ties: smallest click_id);
  user_name from the users mapping or None; the checkout's own columns as the job writes them.
- last_click (attribute(..., model="last_click")): the same, with the latest qualifying click
  (ties: largest click_id).
- linear (linear_touches): one Touch per distinct qualifying click_id of a checkout (at its
  earliest qualifying time), each with total_amount / touches, rounded half up to 13 places as
  Flink divides DECIMAL(10, 2) by INT; no Touch for a checkout without a qualifying click.
- position_based and time_decay (weighted_touches): the same Touches, each credited in cents by
  its weight (40/20/40 by position; 2 ^ -(seconds before the checkout / half life)), the cents
  left over by whole-cent shares going one each to the largest remainders (ties: earlier click).

Events are the dicts a producer serialises with json.dumps: a field the job reads as text is the
JSON value's text (a string as is, a number as json.dumps writes it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from attribution.config import Settings

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
TIME_DECAY_HALF_LIFE = Settings.from_env({}).time_decay_half_life_seconds  # the default, as the tests run


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT)


@dataclass(frozen=True)
class Attribution:
    """One row of a one_click model's table (attribution/models.py), every column, in its order."""

    checkout_id: str
    user_id: int
    user_name: str | None
    click_id: str | None
    product_id: str
    payment_method: str | None
    total_amount: Decimal | None
    shipping_address: str | None
    billing_address: str | None
    user_agent: str | None
    ip_address: str | None
    checkout_time: datetime
    click_time: datetime | None


def text(value: object) -> str | None:
    """A JSON scalar as the job reads it: text; None for null, a missing field, an array or object."""
    if value is None or isinstance(value, list | dict):
        return None
    return value if isinstance(value, str) else json.dumps(value)


def ident(value: object) -> str:
    """An id or product_id: text without surrounding spaces."""
    return str(text(value)).strip(" ")


def amount(value: object) -> Decimal | None:
    """total_amount as the sink's DECIMAL(10, 2), rounded half up."""
    raw = text(value)
    return None if raw is None else Decimal(raw).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def qualifies(click: dict, checkout: dict, window: timedelta = timedelta(hours=1)) -> bool:
    """Same user, same product, checkout_time - window <= click_time <= checkout_time."""
    if int(click["user_id"]) != int(checkout["user_id"]) or ident(click["product_id"]) != ident(
        checkout["product_id"]
    ):
        return False
    checkout_time = parse_time(checkout["datetime_occured"])
    return checkout_time - window <= parse_time(click["datetime_occured"]) <= checkout_time


def distinct_checkouts(checkouts: list[dict]) -> list[dict]:
    """The first delivery of each checkout_id, in order."""
    seen: dict[str, dict] = {}
    for checkout in checkouts:
        seen.setdefault(ident(checkout["checkout_id"]), checkout)
    return list(seen.values())


def attribute(
    clicks: list[dict],
    checkouts: list[dict],
    users: dict[int, str],
    window: timedelta = timedelta(hours=1),
    model: str = "first_click",
) -> dict[str, Attribution]:
    """first_click or last_click: one Attribution per checkout_id."""
    assert model in ("first_click", "last_click"), model
    result: dict[str, Attribution] = {}
    for checkout in distinct_checkouts(checkouts):
        best: tuple[datetime, str] | None = None
        for click in clicks:
            if qualifies(click, checkout, window):
                # Python compares str by code point: the byte order of their UTF-8.
                candidate = (parse_time(click["datetime_occured"]), ident(click["click_id"]))
                if best is None or (candidate < best if model == "first_click" else candidate > best):
                    best = candidate
        user_id = int(checkout["user_id"])
        checkout_id = ident(checkout["checkout_id"])
        result[checkout_id] = Attribution(
            checkout_id=checkout_id,
            user_id=user_id,
            user_name=users.get(user_id),
            click_id=best[1] if best else None,
            product_id=ident(checkout["product_id"]),
            payment_method=text(checkout.get("payment_method")),
            total_amount=amount(checkout.get("total_amount")),
            shipping_address=text(checkout.get("shipping_address")),
            billing_address=text(checkout.get("billing_address")),
            user_agent=text(checkout.get("user_agent")),
            ip_address=text(checkout.get("ip_address")),
            checkout_time=parse_time(checkout["datetime_occured"]),
            click_time=best[0] if best else None,
        )
    return result


@dataclass(frozen=True)
class Touch:
    """One row of a touches model's view (the linear model's), every column, in its order."""

    checkout_id: str
    click_id: str
    click_time: datetime
    credit: Decimal | None
    touches: int
    product_id: str
    checkout_time: datetime


def linear_touches(
    clicks: list[dict], checkouts: list[dict], window: timedelta = timedelta(hours=1)
) -> dict[tuple[str, str], Touch]:
    """linear: one Touch per (checkout_id, click_id) of a qualifying click."""
    result: dict[tuple[str, str], Touch] = {}
    for checkout in distinct_checkouts(checkouts):
        earliest: dict[str, datetime] = {}  # click_id -> its earliest qualifying time
        for click in clicks:
            if qualifies(click, checkout, window):
                click_id, at = ident(click["click_id"]), parse_time(click["datetime_occured"])
                if click_id not in earliest or at < earliest[click_id]:
                    earliest[click_id] = at
        total = amount(checkout.get("total_amount"))
        credit = None
        if total is not None and earliest:
            # Flink: DECIMAL(10, 2) / INT is DECIMAL(21, 13), rounded half up. (The division keeps
            # 28 digits before the rounding: at most 8 before the point, so 20 after it.)
            credit = (total / len(earliest)).quantize(Decimal("1E-13"), rounding=ROUND_HALF_UP)
        checkout_id = ident(checkout["checkout_id"])
        for click_id, at in earliest.items():
            result[(checkout_id, click_id)] = Touch(
                checkout_id=checkout_id,
                click_id=click_id,
                click_time=at,
                credit=credit,
                touches=len(earliest),
                product_id=ident(checkout["product_id"]),
                checkout_time=parse_time(checkout["datetime_occured"]),
            )
    return result


def position_weights(n: int) -> list[Decimal]:
    """Snowplow's position-based weights of n clicks in order: 40 % first, 40 % last, 20 % between
    (as whole numbers: 2 (n - 2), 1 each, 2 (n - 2)); one click all, two 50/50."""
    if n <= 2:
        return [Decimal(1)] * n
    return [Decimal(2 * (n - 2)), *[Decimal(1)] * (n - 2), Decimal(2 * (n - 2))]


def decay_weight(click_time: datetime, checkout_time: datetime, half_life_seconds: int) -> Decimal:
    """2 ^ -(seconds before the checkout / half life), to 40 digits."""
    with localcontext() as context:
        context.prec = 40
        seconds = Decimal((checkout_time - click_time) // timedelta(microseconds=1)) / 1_000_000
        return Decimal(2) ** (-seconds / half_life_seconds)


def cents(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """amount split by weights into cents that add up to it: whole cents of each share, then one
    more cent each to the largest remainders (ties: the earlier)."""
    with localcontext() as context:
        context.prec = 40
        total = sum(weights)
        exact = [amount * 100 * w / total for w in weights]
        whole = [e.to_integral_value(rounding=ROUND_FLOOR) for e in exact]
        left = int(amount * 100 - sum(whole))
        order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - whole[i]), i))
        for i in order[:left]:
            whole[i] += 1
        return [(w / 100).quantize(Decimal("0.01")) for w in whole]


def weighted_touches(
    clicks: list[dict],
    checkouts: list[dict],
    weigh: Callable[[list[datetime], datetime], list[Decimal]],
    window: timedelta = timedelta(hours=1),
) -> dict[tuple[str, str], Touch]:
    """A credit-in-cents model: linear's touches, each credited by `weigh`(click times in order,
    checkout time)."""
    result: dict[tuple[str, str], Touch] = {}
    by_checkout: dict[str, list[Touch]] = {}
    for touch in linear_touches(clicks, checkouts, window).values():
        by_checkout.setdefault(touch.checkout_id, []).append(touch)
    amounts = {ident(c["checkout_id"]): amount(c.get("total_amount")) for c in distinct_checkouts(checkouts)}
    for checkout_id, touches in by_checkout.items():
        touches.sort(key=lambda t: (t.click_time, t.click_id))  # str order: UTF-8 byte order
        total = amounts[checkout_id]
        weights = weigh([t.click_time for t in touches], touches[0].checkout_time)
        credits = cents(total, weights) if total is not None else [None] * len(touches)
        for touch, credit in zip(touches, credits, strict=True):
            result[(checkout_id, touch.click_id)] = replace(touch, credit=credit)
    return result


# Each model's reference (attribution/models.py): (clicks, checkouts, users, window) -> its rows.
REFERENCES: dict[str, Callable[[list[dict], list[dict], dict[int, str], timedelta], dict]] = {
    "first_click": lambda clicks, checkouts, users, window: attribute(clicks, checkouts, users, window),
    "last_click": lambda clicks, checkouts, users, window: attribute(
        clicks, checkouts, users, window, model="last_click"
    ),
    "linear": lambda clicks, checkouts, users, window: linear_touches(clicks, checkouts, window),
    "position_based": lambda clicks, checkouts, users, window: weighted_touches(
        clicks, checkouts, lambda times, _: position_weights(len(times)), window
    ),
    "time_decay": lambda clicks, checkouts, users, window: weighted_touches(
        clicks,
        checkouts,
        lambda times, checkout_time: [decay_weight(t, checkout_time, TIME_DECAY_HALF_LIFE) for t in times],
        window,
    ),
}


def expected_by_model(
    models: Iterable[str],
    clicks: list[dict],
    checkouts: list[dict],
    users: dict[int, str],
    window: timedelta = timedelta(hours=1),
) -> dict[str, dict]:
    """These models' rows for these events (valid ones, in send order), by the reference."""
    return {model: REFERENCES[model](clicks, checkouts, users, window) for model in models}
