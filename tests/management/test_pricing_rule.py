"""The SFpark-style rule on constructed cases: each band, the step, the floor and cap, the
once-per-period limit, fees read from the inventory's words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.errors import InvalidInput
from app.management.pricing import Rule, band_of, parse_fee, parse_target, recommend

NOW = datetime(2026, 12, 1, tzinfo=UTC)
RULE = Rule(low=0.6, high=0.8, step=0.5, floor=1.0, cap=6.0, period_days=28)


def rec(occupancy: float | None, fee: float | None = 3.0, last: datetime | None = None, rule: Rule = RULE):  # type: ignore[no-untyped-def]
    return recommend(occupancy=occupancy, current_fee=fee, last_change=last, as_of=NOW, rule=rule)


@pytest.mark.parametrize(("occupancy", "change", "fee"), [
    (0.95, 0.5, 3.5), (0.81, 0.5, 3.5), (0.80, 0.0, 3.0), (0.70, 0.0, 3.0), (0.60, 0.0, 3.0),
    (0.59, -0.5, 2.5), (0.10, -0.5, 2.5),
])
def test_one_step_toward_the_band(occupancy: float, change: float, fee: float) -> None:
    got = rec(occupancy)
    assert (got.change, got.recommended_fee) == (change, fee)
    assert f"{occupancy:.0%}" in got.reason


def test_the_step_is_the_given_one() -> None:
    got = rec(0.9, rule=Rule(step=0.25, cap=10))
    assert (got.change, got.recommended_fee) == (0.25, 3.25)


def test_floor_and_cap_are_never_passed() -> None:
    assert (rec(0.95, fee=6.0).change, rec(0.95, fee=6.0).recommended_fee) == (0.0, 6.0)
    assert "cap" in rec(0.95, fee=5.8).reason
    assert rec(0.95, fee=5.8).change == 0.0
    assert rec(0.95, fee=5.5).recommended_fee == 6.0  # exactly at the cap is allowed
    assert (rec(0.2, fee=1.0).change, rec(0.2, fee=1.0).recommended_fee) == (0.0, 1.0)
    assert "floor" in rec(0.2, fee=1.2).reason
    assert rec(0.2, fee=1.5).recommended_fee == 1.0


def test_at_most_once_per_period() -> None:
    recent = rec(0.95, last=NOW - timedelta(days=27, hours=23))
    assert recent.change == 0.0
    assert "per period" in recent.reason
    due = rec(0.95, last=NOW - timedelta(days=28))
    assert due.change == 0.5


def test_no_fee_known_gives_the_direction_only() -> None:
    got = rec(0.9, fee=None)
    assert (got.change, got.recommended_fee) == (0.5, None)
    assert "no current fee is known" in got.reason


def test_no_data_no_change() -> None:
    got = rec(None)
    assert (got.change, got.recommended_fee) == (0.0, 3.0)
    assert "no occupancy data" in got.reason


@pytest.mark.parametrize(("weekday", "hour", "band"), [
    (1, 7, "weekday_morning"), (5, 10, "weekday_morning"), (3, 11, "weekday_midday"), (3, 15, "weekday_midday"),
    (2, 16, "weekday_evening"), (4, 20, "weekday_evening"), (6, 7, "weekend"), (7, 20, "weekend"),
    (1, 6, None), (5, 21, None), (6, 22, None), (7, 3, None),
])
def test_bands(weekday: int, hour: int, band: str | None) -> None:
    assert band_of(weekday, hour) == band


@pytest.mark.parametrize(("fee", "rate"), [
    ("5元/小时", 5.0), ("2.5 元/时", 2.5), ("夜间共享 2元/小时", 2.0), ("3/h", 3.0), ("首小时免费，之后2元/小时", 2.0),
    ("首小时5元/小时，之后3元/小时", None), ("免费", None), (None, None), ("10元/次", None),
])
def test_fee_from_the_inventory(fee: str | None, rate: float | None) -> None:
    assert parse_fee(fee) == rate


def test_target_band() -> None:
    assert parse_target("60-80") == (0.6, 0.8)
    for bad in ("80-60", "60", "a-b", "50-120"):
        with pytest.raises(InvalidInput):
            parse_target(bad)
