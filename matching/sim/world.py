"""The simulated district and its demand, generated up front so every policy sees the same.

Positions are metres on a street grid (driving and walking distances are Manhattan). The
demand of one seed — initial occupants, citypark users and non-users — is identical for all
policies; only the decisions (and what follows from them) differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from matching.geo import project

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class District:
    """Spaces at ``xy`` (metres, shape (n, 2)) and the destinations drivers head for."""

    name: str
    xy: Floats
    hotspots: Floats  # (h, 2) centres of attraction (stations, squares, offices)

    @property
    def bounds(self) -> tuple[Floats, Floats]:
        """(min corner, max corner) of the spaces."""
        return self.xy.min(axis=0), self.xy.max(axis=0)


def district_from_geojson(name: str, collections: Iterable[dict[str, Any]]) -> District:
    """Spaces of inventory FeatureCollections (point features); hotspots = facility centres."""
    points = [f["geometry"]["coordinates"] for fc in collections for f in fc["features"]
              if f["properties"].get("feature") == "space" and f["geometry"]["type"] == "Point"]
    lonlat = np.asarray(points, dtype=float)
    origin = (float(lonlat[:, 1].mean()), float(lonlat[:, 0].mean()))
    x, y = project(lonlat[:, 1], lonlat[:, 0], origin)
    xy = np.column_stack([x, y])
    return District(name, xy, places(np.random.default_rng(0), xy, max(4, len(xy) // 260)))


def synthetic_district(n: int, seed: int = 0, block_m: float = 100.0) -> District:
    """``n`` spaces laid out like the demo district: ~60 % in lots, the rest on curb segments.

    Lots are grids of bays (2.5 m × 5 m) of 40–250 spaces inside blocks; curb segments are
    one block long with a space every 6 m along a street. One hotspot per ~260 spaces, at
    block centres (see :func:`places`).
    """
    rng = np.random.default_rng(seed)
    side = block_m * max(3, int(np.ceil(np.sqrt(n) * 30 / block_m)))
    lots = _lots(rng, int(n * 0.6), side, block_m)
    curbs = _curbs(rng, n - len(lots), side, block_m)
    xy = np.vstack([lots, curbs])
    return District(f"synthetic-{n}", xy, places(rng, xy, max(4, n // 260), block_m))


def places(rng: np.random.Generator, xy: Floats, count: int, block_m: float | None = None,
           parking_within_m: float = 150.0) -> Floats:
    """``count`` places people drive to (stations, squares, offices): random points of the
    district (block centres when ``block_m`` is given) with parking within ``parking_within_m``.

    Places are drawn independently of where the parking is — a destination is a building,
    not a car park, so drivers do not find a 250-bay lot at every destination by construction.
    """
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    tree, found = cKDTree(xy), list[Floats]()
    while len(found) < count:
        points = rng.uniform(lo, hi, (4 * count, 2))
        if block_m:
            points = np.floor(points / block_m) * block_m + block_m / 2
        near = tree.query(points)[0] <= parking_within_m
        found.extend(points[near][: count - len(found)])
    return np.asarray(found, dtype=np.float64)


def _lots(rng: np.random.Generator, count: int, side: float, block_m: float) -> Floats:
    parts: list[Floats] = []
    while sum(len(p) for p in parts) < count:
        size = int(rng.integers(40, 251))
        cols = int(np.ceil(np.sqrt(size * 2)))
        corner = rng.integers(0, int(side // block_m), 2) * block_m + 15
        k = np.arange(size)
        parts.append((corner + np.column_stack([k % cols * 2.5, k // cols * 5.0])).astype(np.float64))
    return np.vstack(parts)[:count]


def _curbs(rng: np.random.Generator, count: int, side: float, block_m: float) -> Floats:
    per = int(block_m // 6)
    segments = int(np.ceil(count / per))
    start = rng.integers(0, int(side // block_m), (segments, 2)) * block_m
    vertical = rng.random(segments) < 0.5
    along = np.arange(per) * 6.0 + 3.0
    step = np.where(vertical[:, None, None], [[0.0, 1.0]], [[1.0, 0.0]])
    xy = start[:, None, :] + along[None, :, None] * step
    return xy.reshape(-1, 2)[:count]


@dataclass(frozen=True)
class Demand:
    """Everything random about one run, fixed by the seed."""

    initial_until: Floats  # per space: occupied until t (s); <= 0 means free at start
    user_t: Floats  # request times of citypark users / cruisers (s)
    user_origin: Floats  # (u, 2)
    user_dest: Floats  # (u, 2)
    user_stay: Floats  # seconds
    other_t: Floats  # non-users: arrival times
    other_at: Floats  # (o, 2) where they look for a space
    other_stay: Floats


@dataclass(frozen=True)
class DemandSpec:
    """Shape of the demand: a peak of users on top of a base rate, and non-users."""

    horizon_s: float = 3 * 3600
    initial_occupancy: float = 0.85
    users_per_space: float = 0.35
    others_per_space: float = 0.35
    peak_at_s: float = 5400
    peak_sd_s: float = 1500
    peak_share: float = 0.7
    hotspot_share: float = 0.7
    origin_km: tuple[float, float] = (1.0, 2.0)
    mean_stay_s: float = 5400


def make_demand(district: District, spec: DemandSpec, seed: int) -> Demand:
    """Draw the demand for ``district`` from ``spec`` with ``seed``."""
    rng = np.random.default_rng(seed)
    n = len(district.xy)
    occupied = rng.random(n) < spec.initial_occupancy
    until = np.where(occupied, rng.exponential(spec.mean_stay_s, n), 0.0)
    user_t = _arrival_times(rng, int(n * spec.users_per_space), spec)
    dest = _destinations(rng, district, len(user_t), spec.hotspot_share)
    angle = rng.uniform(0, 2 * np.pi, len(user_t))
    dist = rng.uniform(*spec.origin_km, len(user_t)) * 1000 / np.sqrt(2)  # Manhattan ≈ km
    origin = dest + np.column_stack([np.cos(angle), np.sin(angle)]) * dist[:, None]
    other_t = np.sort(rng.uniform(0, spec.horizon_s, int(n * spec.others_per_space)))
    other_at = _destinations(rng, district, len(other_t), 0.5)
    return Demand(until, user_t, origin, dest, 600 + rng.exponential(spec.mean_stay_s, len(user_t)),
                  other_t, other_at, 600 + rng.exponential(spec.mean_stay_s, len(other_t)))


def _arrival_times(rng: np.random.Generator, count: int, spec: DemandSpec) -> Floats:
    peak = rng.random(count) < spec.peak_share
    t = np.where(peak, rng.normal(spec.peak_at_s, spec.peak_sd_s, count),
                 rng.uniform(0, spec.horizon_s, count))
    return np.sort(np.clip(t, 0, spec.horizon_s * 0.9))


def _destinations(rng: np.random.Generator, district: District, count: int, share: float) -> Floats:
    lo, hi = district.bounds
    near = district.hotspots[rng.integers(0, len(district.hotspots), count)]
    near = near + rng.normal(0, 120, (count, 2))
    anywhere = rng.uniform(lo, hi, (count, 2))
    return np.where((rng.random(count) < share)[:, None], near, anywhere)
