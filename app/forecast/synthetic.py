"""Generated occupancy histories with what real ones have: a weekly pattern by kind of place
(offices, shops, homes, mixed), day-to-day level changes, persistent deviations (an AR(1)
process), events, public holidays behaving like Sundays, closures (gaps without data), counter
noise; and, in the CSV, dirty rows (over capacity, negative, duplicated, trailing whitespace).

For tests, benchmarks and demos only: nothing is tuned to a public data set.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from scipy.signal import lfilter

from app.forecast import calendar

KINDS = ("office", "retail", "residential", "mixed")


def _rise(hours: np.ndarray, at: float, width: float = 0.6) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(hours - at) / width))


def occupancy_shape(kind: str, hours: np.ndarray, day_type: np.ndarray) -> np.ndarray:
    """Mean occupied share by local hour and day type (0 weekday, 1 Saturday, 2 Sunday/holiday)."""
    weekday = day_type == 0
    if kind == "office":
        day = _rise(hours, 8.5) * (1 - _rise(hours, 17.8))
        return np.where(weekday, 0.08 + 0.85 * day, 0.08 + 0.15 * day)
    if kind == "retail":
        day = _rise(hours, 10.5, 0.9) * (1 - _rise(hours, 21.0, 0.8))
        return np.where(weekday, 0.1 + 0.55 * day, 0.1 + 0.85 * day)
    if kind == "residential":
        away = _rise(hours, 8.0) * (1 - _rise(hours, 18.5, 0.9))
        return np.where(weekday, 0.92 - 0.5 * away, 0.9 - 0.2 * away)
    return (occupancy_shape("office", hours, day_type) + occupancy_shape("retail", hours, day_type)) / 2


@dataclass
class History:
    """Free spaces (facilities × 15-minute steps, NaN where the counter said nothing)."""

    ids: list[str]
    capacity: np.ndarray
    kinds: list[str]
    start: datetime
    free: np.ndarray

    @property
    def epoch(self) -> np.ndarray:
        return self.start.timestamp() + np.arange(self.free.shape[1]) * 900.0


def generate(n_facilities: int, days: int, *, start: datetime, seed: int = 0, zone: str = "Asia/Shanghai",
             country: str = "CN", prefix: str = "hist", closures: bool = True) -> History:
    """A history of ``days`` days from ``start`` (UTC) for ``n_facilities`` gate-counted lots."""
    rng = np.random.default_rng(seed)
    n = days * 96
    epoch = start.timestamp() + np.arange(n) * 900.0
    local = calendar.local_seconds(epoch, zone)
    hours = (local % 86400) / 3600
    weekday = ((np.floor(local / 86400) + 3) % 7).astype(int)
    day_type = np.where(weekday < 5, 0, np.where(weekday == 5, 1, 2))
    day_type = np.where(calendar.holiday(epoch, zone, country), 2, day_type)
    day_index = ((local - local[0] + (local[0] % 86400)) // 86400).astype(int)
    kinds = [KINDS[i % len(KINDS)] for i in range(n_facilities)]
    capacity = rng.integers(40, 400, n_facilities).astype(np.float64)
    free = np.empty((n_facilities, n))
    for f in range(n_facilities):
        free[f] = _one(rng, kinds[f], capacity[f], hours, day_type, day_index, closures)
    ids = [f"{prefix}-{i:04d}" for i in range(n_facilities)]
    return History(ids, capacity, kinds, start, free)


def _one(rng: np.random.Generator, kind: str, cap: float, hours: np.ndarray, day_type: np.ndarray,
         day_index: np.ndarray, closures: bool) -> np.ndarray:
    n = hours.size
    shift = rng.normal(0, 0.4)  # this facility's own rhythm, a little earlier or later
    occ = occupancy_shape(kind, hours - shift, day_type) * rng.uniform(0.8, 1.05)
    days = int(day_index.max()) + 1
    occ = occ * rng.normal(1.0, 0.07, days)[day_index]  # busier and quieter days
    ar = lfilter([1.0], [1.0, -0.93], rng.normal(0, 0.025, n))  # a deviation that fades slowly
    occ = occ + ar
    for _ in range(int(days * 0.05)):  # events: a few hours much busier
        at = int(rng.integers(0, n - 16))
        occ[at:at + int(rng.integers(8, 20))] += rng.uniform(0.15, 0.4)
    free = np.round(cap * (1 - np.clip(occ, 0.0, 1.0)) + rng.normal(0, 1.0, n))
    free = np.clip(free, 0, cap)
    if closures:
        for _ in range(max(1, int(days * 0.03))):  # counter down or lot closed: no data
            at = int(rng.integers(0, n - 8))
            free[at:at + int(rng.integers(8, 96))] = np.nan
    return free


def write_counts_csv(history: History, path: Path, *, zone: str = "Asia/Shanghai", dirty: float = 0.0,
                     seed: int = 0, every: int = 1) -> dict[str, int]:
    """Write ``facility_id,observed_at,free,total`` rows; with ``dirty`` (a fraction), also
    over-capacity, negative, duplicated and whitespace-padded rows. Returns what was written."""
    rng = np.random.default_rng(seed + 1)
    tz = ZoneInfo(zone)
    stats = {"rows": 0, "good": 0, "over_capacity": 0, "negative": 0, "duplicates": 0, "padded": 0}
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["facility_id", "observed_at", "free", "total"])
        base = history.start
        for f, fid in enumerate(history.ids):
            cap = int(history.capacity[f])
            for k in range(0, history.free.shape[1], every):
                value = history.free[f, k]
                if np.isnan(value):
                    continue
                at = base + timedelta(seconds=900 * k + int(rng.integers(0, 600)))
                stamp = _stamp(at, tz, k)
                _write_row(out, rng, stats, [fid, stamp, str(int(value)), str(cap)], cap, dirty)
    return stats


def _stamp(at: datetime, tz: ZoneInfo, k: int) -> str:
    if k % 2:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")  # local wall-clock time
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _write_row(out: Any, rng: np.random.Generator, stats: dict[str, int], row: list[str], cap: int,
               dirty: float) -> None:
    roll = rng.random() if dirty else 1.0
    stats["rows"] += 1
    if roll < dirty * 0.25:
        stats["over_capacity"] += 1
        row = [row[0], row[1], str(cap + int(rng.integers(1, 30))), row[3]]
    elif roll < dirty * 0.5:
        stats["negative"] += 1
        row = [row[0], row[1], str(-int(rng.integers(1, 10))), row[3]]
    elif roll < dirty * 0.75:
        stats["padded"] += 1
        stats["good"] += 1
        row = [row[0] + "  ", row[1] + " ", row[2] + "\t", row[3]]
    else:
        stats["good"] += 1
    out.writerow(row)
    if dirty and dirty * 0.75 <= roll < dirty:
        stats["duplicates"] += 1
        stats["rows"] += 1
        out.writerow(row)


def inventory(history: History, *, lat: float = 41.11, lon: float = 122.99, zone: str = "Asia/Shanghai",
              spacing_deg: float = 0.002) -> dict[str, Any]:
    """A FeatureCollection of the history's lots (gate-counted), on a grid around (lat, lon)."""
    side = int(np.ceil(np.sqrt(len(history.ids))))
    features = []
    for i, fid in enumerate(history.ids):
        x, y = lon + (i % side) * spacing_deg, lat + (i // side) * spacing_deg
        d = 0.0004
        ring = [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
        features.append({"type": "Feature", "id": fid, "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": {"feature": "facility", "name": f"{history.kinds[i]} lot {i}", "kind": "lot",
                                        "capacity": int(history.capacity[i]), "counted": True, "timezone": zone}})
    return {"type": "FeatureCollection", "features": features}
