"""The reference must itself be right: its answers on cases worked out by hand."""

from datetime import datetime, timedelta

from tests.reference import attribute

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
