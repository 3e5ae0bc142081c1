"""The opening_hours subset used for opening, public (shared) hours and rule days."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.core import hours
from app.core.errors import InvalidInput


def at(day: int, hh: int, mm: int = 0) -> datetime:
    """2026-11-30 is a Monday; day 0 = Monday."""
    return datetime(2026, 11, 30, hh, mm) + timedelta(days=day)


@pytest.mark.parametrize(
    ("spec", "when", "expected"),
    [
        ("24/7", at(6, 3), True),
        ("Mo-Su 00:00-24:00", at(2, 23, 59), True),
        ("Mo-Fr 08:00-18:00", at(0, 8), True),
        ("Mo-Fr 08:00-18:00", at(0, 18), False),
        ("Mo-Fr 08:00-18:00", at(5, 12), False),
        ("Mo-Fr 18:30-07:30; Sa,Su 00:00-24:00", at(1, 2), True),   # Tue 02:00, from Mon night
        ("Mo-Fr 18:30-07:30; Sa,Su 00:00-24:00", at(0, 2), False),  # Mon 02:00: Sun had 24h only
        ("Mo-Fr 18:30-07:30; Sa,Su 00:00-24:00", at(5, 7), True),   # Sat 07:00: Fri night + Sat
        ("Mo-Fr 18:30-07:30; Sa,Su 00:00-24:00", at(2, 12), False),
        ("Fr-Mo 10:00-12:00", at(6, 11), True),                     # wrapping day range
        ("Mo-Su 08:00-20:00; Su off", at(6, 11), False),
        (None, at(3, 3), True),
    ],
)
def test_is_open(spec: str | None, when: datetime, expected: bool) -> None:
    assert hours.is_open(spec, when) is expected


def test_minutes_until_close_crosses_midnight() -> None:
    assert hours.minutes_until_close("Mo-Fr 22:00-06:00", at(0, 23)) == 7 * 60
    assert hours.minutes_until_close("Mo-Fr 22:00-06:00", at(0, 12)) is None


@pytest.mark.parametrize("spec", ["Mo-Xx 08:00-10:00", "Mo 8-10", "Mo 25:00-26:00", ""])
def test_bad_specs_are_rejected(spec: str) -> None:
    with pytest.raises(InvalidInput):
        hours.parse(spec)


def test_day_masks() -> None:
    assert hours.parse_days("Mo-Sa") == 0b0111111
    assert hours.parse_days("Sa,Su") == 0b1100000
    assert hours.parse_days("Fr-Mo") == 0b1110001
