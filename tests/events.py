"""Event builders shared by the rule tests and the integration tests: the original's fields, the
datetime_occured format, and descriptive columns that differ per column and per checkout."""

from __future__ import annotations

from datetime import datetime


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def click(click_id: str, user: int | str, product: str | int, at: datetime, **extra: object) -> dict:
    return {
        "click_id": click_id,
        "user_id": user,
        "product_id": product,
        "product": "widget",
        "price": 9.99,
        "url": "https://example.com/p",
        "user_agent": "test",
        "ip_address": "10.0.0.1",
        "datetime_occured": fmt(at),
        **extra,
    }


def checkout(checkout_id: str, user: int | str, product: str | int, at: datetime, **extra: object) -> dict:
    # Every descriptive column distinct, between columns and between checkouts: a swap shows.
    n = sum(map(ord, checkout_id)) % 250
    return {
        "checkout_id": checkout_id,
        "user_id": user,
        "product_id": product,
        "payment_method": ["VISA 16 digit", "Mastercard", "JCB 15 digit", "Discover"][n % 4],
        "total_amount": 10 + n / 4,
        "shipping_address": f"{n} Shipping Street",
        "billing_address": f"{n} Billing Avenue",
        "user_agent": f"agent/{n}",
        "ip_address": f"10.0.{n}.1",
        "datetime_occured": fmt(at),
        **extra,
    }
