"""The reference must itself be right: its answers on cases worked out by hand."""

from datetime import datetime, timedelta
from decimal import Decimal

from tests.reference import Touch, attribute, linear_touches

T = datetime(2024, 1, 1, 12, 0, 0)


def ev(kind: str, ident: str, at: datetime, user: int = 1, product: str = "p") -> dict:
    return {
        f"{kind}_id": ident,
        "user_id": user,
        "product_id": product,
        "datetime_occured": at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
    }


def click_of(clicks: list[dict], at: datetime) -> str | None:
    return attribute(clicks, [ev("checkout", "co", at)], {1: "ann"})["co"].click_id


def test_window_bounds_are_inclusive_to_the_millisecond() -> None:
    ms = timedelta(milliseconds=1)
    assert click_of([ev("click", "a", T - timedelta(hours=1))], T) == "a"
    assert click_of([ev("click", "a", T - timedelta(hours=1) - ms)], T) is None
    assert click_of([ev("click", "a", T)], T) == "a"
    assert click_of([ev("click", "a", T + ms)], T) is None


def test_earliest_click_wins_and_ties_go_to_the_smaller_id() -> None:
    clicks = [ev("click", "late", T - timedelta(minutes=5)), ev("click", "early", T - timedelta(minutes=50))]
    assert click_of(clicks, T) == "early"
    tie = [ev("click", "b", T - timedelta(minutes=5)), ev("click", "a", T - timedelta(minutes=5))]
    assert click_of(tie, T) == "a"


def test_other_user_or_product_never_counts_and_unknown_user_has_no_name() -> None:
    clicks = [ev("click", "u2", T, user=2), ev("click", "q", T, product="q")]
    assert click_of(clicks, T) is None
    result = attribute([ev("click", "c", T, user=7)], [ev("checkout", "co", T, user=7)], {1: "ann"})
    assert result["co"].click_id == "c" and result["co"].user_name is None


def test_duplicate_checkout_is_one_result() -> None:
    checkout = ev("checkout", "co", T)
    assert len(attribute([], [checkout, dict(checkout)], {})) == 1


# --- last_click --------------------------------------------------------------------------------
def last_click_of(clicks: list[dict], at: datetime) -> str | None:
    return attribute(clicks, [ev("checkout", "co", at)], {1: "ann"}, model="last_click")["co"].click_id


def test_last_click_bounds_are_inclusive_to_the_millisecond() -> None:
    ms = timedelta(milliseconds=1)
    assert last_click_of([ev("click", "a", T - timedelta(hours=1))], T) == "a"
    assert last_click_of([ev("click", "a", T - timedelta(hours=1) - ms)], T) is None
    assert last_click_of([ev("click", "a", T), ev("click", "b", T - timedelta(minutes=1))], T) == "a"
    assert last_click_of([ev("click", "a", T + ms), ev("click", "b", T - timedelta(minutes=1))], T) == "b"


def test_latest_click_wins_and_ties_go_to_the_larger_id_in_utf8_order() -> None:
    clicks = [ev("click", "late", T - timedelta(minutes=5)), ev("click", "early", T - timedelta(minutes=50))]
    assert last_click_of(clicks, T) == "late"
    at = T - timedelta(minutes=5)
    assert last_click_of([ev("click", "a", at), ev("click", "b", at), ev("click", "B", at)], T) == "b"
    # U+1F600 is after U+FF21 in UTF-8 (and code points), before it in UTF-16.
    assert last_click_of([ev("click", "\U0001f600", at), ev("click", "\uff21", at)], T) == "\U0001f600"


def test_last_click_keeps_the_checkout_columns_and_is_none_without_a_click() -> None:
    checkout = {**ev("checkout", "co", T, user=7), "total_amount": 12.345}
    first = attribute([ev("click", "c", T, user=7)], [checkout], {}, model="first_click")["co"]
    last = attribute([ev("click", "c", T, user=7)], [checkout], {}, model="last_click")["co"]
    assert first == last and last.user_name is None and last.total_amount == Decimal("12.35")
    assert last_click_of([ev("click", "q", T, product="q")], T) is None


def test_repeat_purchases_are_attributed_each_on_its_own() -> None:
    clicks = [ev("click", "a", T - timedelta(minutes=70)), ev("click", "b", T - timedelta(minutes=5))]
    checkouts = [ev("checkout", "early", T - timedelta(minutes=30)), ev("checkout", "late", T)]
    first = attribute(clicks, checkouts, {})
    last = attribute(clicks, checkouts, {}, model="last_click")
    assert {k: a.click_id for k, a in first.items()} == {"early": "a", "late": "b"}
    assert {k: a.click_id for k, a in last.items()} == {"early": "a", "late": "b"}
    clicks.append(ev("click", "c", T - timedelta(minutes=40)))
    assert attribute(clicks, checkouts, {}, model="last_click")["early"].click_id == "c"
    assert attribute(clicks, checkouts, {}, model="last_click")["late"].click_id == "b"


def test_a_redelivered_checkout_is_its_first_delivery() -> None:
    clicks = [ev("click", "a", T - timedelta(minutes=5))]
    first, again = ev("checkout", "co", T), ev("checkout", "co", T + timedelta(hours=2))
    for model in ("first_click", "last_click"):
        assert attribute(clicks, [first, again], {}, model=model)["co"].click_id == "a"
    assert set(linear_touches(clicks, [first, again])) == {("co", "a")}


# --- linear ------------------------------------------------------------------------------------
def linear(clicks: list[dict], amount: object = "10.00", at: datetime = T) -> dict[str, Touch]:
    touches = linear_touches(clicks, [{**ev("checkout", "co", at), "total_amount": amount}])
    assert all(checkout_id == "co" for checkout_id, _ in touches)
    return {click_id: touch for (_, click_id), touch in touches.items()}


def test_linear_shares_the_amount_equally_rounded_half_up_to_13_places() -> None:
    clicks = [ev("click", c, T - timedelta(minutes=m)) for c, m in (("a", 1), ("b", 2), ("c", 3))]
    touches = linear(clicks)
    assert {t.touches for t in touches.values()} == {3}
    assert {t.credit for t in touches.values()} == {Decimal("3.3333333333333")}
    assert touches["b"].click_time == T - timedelta(minutes=2) and touches["b"].checkout_time == T
    assert linear(clicks[:2])["a"].credit == Decimal("5.0000000000000")
    # 20.00 / 3 = 6.666...: rounded up; 0.05 / 3 = 0.01666...: up; 0.02 / 3 = 0.00666...: up.
    assert linear(clicks, "20")["a"].credit == Decimal("6.6666666666667")
    assert linear(clicks, 0.05)["a"].credit == Decimal("0.0166666666667")
    # A tie rounds up (HALF_UP, not HALF_EVEN): 0.01 / 4096 = 0.00000244140625 exactly.
    many = [ev("click", str(i), T - timedelta(milliseconds=i)) for i in range(4096)]
    assert linear(many, "0.01")["0"].credit == Decimal("0.0000024414063")


def test_linear_credits_sum_to_the_amount_within_the_rounding() -> None:
    for n in range(1, 12):
        clicks = [ev("click", f"c{i}", T - timedelta(minutes=i)) for i in range(n)]
        for total in ("10.00", "0.01", "99999999.99", "7.77"):
            credits = [t.credit for t in linear(clicks, total).values()]
            assert len(credits) == n
            total_credit = sum(c for c in credits if c is not None)
            assert abs(total_credit - Decimal(total)) <= n * Decimal("0.5E-13")


def test_linear_counts_a_repeated_click_once_at_its_earliest_qualifying_time() -> None:
    clicks = [
        ev("click", "a", T - timedelta(minutes=5)),
        ev("click", "a", T - timedelta(minutes=20)),
        ev("click", "a", T - timedelta(minutes=90)),  # too old: not a qualifying time
        ev("click", "b", T - timedelta(minutes=10)),
    ]
    touches = linear(clicks)
    assert set(touches) == {"a", "b"} and touches["a"].touches == 2
    assert touches["a"].click_time == T - timedelta(minutes=20)
    assert touches["a"].credit == Decimal("5")


def test_linear_bounds_other_users_products_and_no_click() -> None:
    ms, hour = timedelta(milliseconds=1), timedelta(hours=1)
    clicks = [
        ev("click", "lower", T - hour),
        ev("click", "too-old", T - hour - ms),
        ev("click", "upper", T),
        ev("click", "too-new", T + ms),
        ev("click", "other-user", T, user=2),
        ev("click", "other-product", T, product="q"),
    ]
    assert set(linear(clicks)) == {"lower", "upper"}
    assert linear([]) == {}
    assert linear(clicks[1:2]) == {}


def test_linear_credit_is_none_without_an_amount_and_repeat_purchases_share_clicks() -> None:
    assert {t.credit for t in linear([ev("click", "a", T)], None).values()} == {None}
    clicks = [ev("click", "a", T - timedelta(minutes=50)), ev("click", "b", T - timedelta(minutes=5))]
    checkouts = [
        {**ev("checkout", "early", T - timedelta(minutes=30)), "total_amount": 9},
        {**ev("checkout", "late", T), "total_amount": 9},
    ]
    touches = linear_touches(clicks, checkouts)
    assert set(touches) == {("early", "a"), ("late", "a"), ("late", "b")}
    assert touches[("early", "a")].credit == Decimal(9) and touches[("late", "b")].credit == Decimal("4.5")


def test_every_model_of_the_registry_has_its_reference() -> None:
    from attribution.models import MODELS
    from tests.reference import REFERENCES

    assert list(REFERENCES) == list(MODELS)
