"""An independent, deliberately naive implementation of the attribution rule, to compare against.

For each distinct checkout_id: among the clicks with the same user_id and product_id and
checkout_time - 1h <= click_time <= checkout_time, the earliest (ties: smallest click_id);
user_name from the users mapping or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT)


@dataclass(frozen=True)
class Attribution:
    checkout_id: str
    user_id: int
    user_name: str | None
    product_id: str
    click_id: str | None
    checkout_time: datetime
    click_time: datetime | None
    total_amount: Decimal | None


def attribute(
    clicks: list[dict],
    checkouts: list[dict],
    users: dict[int, str],
    window: timedelta = timedelta(hours=1),
) -> dict[str, Attribution]:
    result: dict[str, Attribution] = {}
    for checkout in checkouts:
        if checkout["checkout_id"] in result:  # a redelivered checkout is the same checkout
            continue
        checkout_time = parse_time(checkout["datetime_occured"])
        user_id = int(checkout["user_id"])
        product_id = str(checkout["product_id"])
        best: tuple[datetime, str] | None = None
        for click in clicks:
            if int(click["user_id"]) != user_id or str(click["product_id"]) != product_id:
                continue
            click_time = parse_time(click["datetime_occured"])
            if checkout_time - window <= click_time <= checkout_time:
                candidate = (click_time, click["click_id"])
                if best is None or candidate < best:
                    best = candidate
        amount = checkout.get("total_amount")
        result[checkout["checkout_id"]] = Attribution(
            checkout_id=checkout["checkout_id"],
            user_id=user_id,
            user_name=users.get(user_id),
            product_id=product_id,
            click_id=best[1] if best else None,
            checkout_time=checkout_time,
            click_time=best[0] if best else None,
            total_amount=None if amount is None else Decimal(str(amount)).quantize(Decimal("0.01")),
        )
    return result
