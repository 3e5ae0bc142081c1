"""Local time for weekly profiles: where an instant falls in a facility's week, and holidays.

Positions are in 15-minute slots since Monday 00:00 local time (0 … 672), as floats so that an
instant between two slots is interpolated. Holidays (python-holidays, the country of
``CITYPARK_FORECAST_HOLIDAYS``; empty for none) are read as Sundays by the profile and are a
feature of the model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

SLOT_S = 900
SLOTS_PER_DAY = 96
WEEK_SLOTS = 7 * SLOTS_PER_DAY
_THURSDAY = 3  # 1970-01-01 was a Thursday: local day 0 is weekday 3


def local_seconds(epoch: np.ndarray, zone: str) -> np.ndarray:
    """Seconds since 1970-01-01 00:00 *local* time for UTC epoch seconds (DST-aware, per hour)."""
    epoch = np.asarray(epoch, dtype=np.float64)
    if epoch.size == 0:
        return epoch.copy()
    hours = np.floor(epoch / 3600).astype(np.int64)
    first, last = int(hours.min()), int(hours.max())
    offsets = _offsets(zone, first, last)
    return epoch + offsets[hours - first]


@lru_cache(maxsize=64)
def _offsets(zone: str, first_hour: int, last_hour: int) -> np.ndarray:
    """The zone's UTC offset (s) of every hour in the range (a few thousand look-ups at most)."""
    tz = ZoneInfo(zone)
    out = np.empty(last_hour - first_hour + 1, dtype=np.float64)
    for i in range(out.size):
        offset = datetime.fromtimestamp((first_hour + i) * 3600, UTC).astimezone(tz).utcoffset()
        out[i] = offset.total_seconds() if offset is not None else 0.0
    return out


def week_position(epoch: np.ndarray, zone: str) -> np.ndarray:
    """Slots since Monday 00:00 local time, in [0, 672)."""
    local = local_seconds(epoch, zone)
    days = np.floor(local / 86400)
    weekday = (days + _THURSDAY) % 7
    return weekday * SLOTS_PER_DAY + (local - days * 86400) / SLOT_S


def local_day(epoch: np.ndarray, zone: str) -> np.ndarray:
    """Local calendar day numbers (days since 1970-01-01 local)."""
    return np.floor(local_seconds(epoch, zone) / 86400).astype(np.int64)


@lru_cache(maxsize=16)
def _holiday_days(country: str, first_year: int, last_year: int) -> np.ndarray:
    if not country:
        return np.empty(0, dtype=np.int64)
    import holidays

    try:
        days = holidays.country_holidays(country, years=range(first_year, last_year + 1))
    except NotImplementedError:
        return np.empty(0, dtype=np.int64)
    epoch0 = datetime(1970, 1, 1).date()
    return np.array(sorted((d - epoch0).days for d in days), dtype=np.int64)


def holiday(epoch: np.ndarray, zone: str, country: str) -> np.ndarray:
    """Whether each instant falls on a public holiday (local date) of ``country``."""
    days = local_day(epoch, zone)
    if days.size == 0 or not country:
        return np.zeros(days.shape, dtype=bool)
    first = datetime.fromtimestamp(int(days.min()) * 86400, UTC).year
    last = datetime.fromtimestamp(int(days.max()) * 86400, UTC).year
    return np.isin(days, _holiday_days(country, first, last))
