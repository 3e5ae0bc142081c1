"""The in-memory free-space index on its own (no database): its grid search against brute force,
and its cached free/not-free answer as time passes and state changes."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from app.assignments import free_index
from app.assignments.eligibility import Eligibility
from app.assignments.free_index import FreeIndex

R = 6_371_008.8
NOW = 1_800_000_000.0
STALE = 600.0


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def _index(lat: np.ndarray, lon: np.ndarray, rng: np.random.Generator) -> FreeIndex:
    """An index over the points with random state: free, occupied, stale, unknown, held."""
    n = len(lat)
    ids = [f"s{i:06d}" for i in range(n)]
    index = FreeIndex(STALE)
    index._inventory((ids, [f"f{i % 7}" for i in range(n)], lat.tolist(), lon.tolist(),
                      (rng.random(n) < 0.2).tolist(), (rng.random(n) < 0.2).tolist(), (rng.random(n) < 0.05).tolist()))
    kind = rng.integers(0, 5, n)  # 0, 1 free; 2 occupied; 3 free but stale; 4 unknown
    occupied = np.where(kind == 2, 1, np.where(kind == 4, -1, 0)).astype(np.int8)
    seen = np.where(kind == 3, NOW - STALE - 5, NOW - rng.uniform(0, STALE - 10, n))
    seen[kind == 4] = np.nan
    held = np.where(rng.random(n) < 0.1, NOW + rng.uniform(-100, 100, n), np.nan)
    index.set_states(occupied, seen, held)
    return index


def _brute(index: FreeIndex, lat: float, lon: float, *, limit: int, radius_m: float, now: float,
           accessible: bool = False, ev: bool = False) -> list[tuple[str, float]]:
    s = index.state
    out = []
    for i, sid in enumerate(index.ids):
        free = (s.occupied[i] == 0 and s.seen[i] > now - STALE and not index.excluded[i]
                and not s.held_until[i] > now and (index.accessible[i] or not accessible)
                and (index.ev[i] or not ev))
        d = _haversine(lat, lon, index.lat[i], index.lon[i])
        if free and d <= radius_m:
            out.append((sid, d))
    return sorted(out, key=lambda p: p[1])[:limit]


def _check(index: FreeIndex, lat: float, lon: float, **query: float | bool) -> None:
    got = [(r["space_id"], r["distance_m"]) for r in index.nearest(lat, lon, **query)]  # type: ignore[arg-type]
    want = _brute(index, lat, lon, **query)  # type: ignore[arg-type]
    assert [d for _, d in got] == pytest.approx([round(d, 1) for _, d in want], abs=0.051)
    # ties may come in any order; every id must be one the brute force ranks at that distance
    assert {s for s, _ in got} <= {s for s, d in _brute(index, lat, lon, **{**query, "limit": 10_000})
                                    if d <= (want[-1][1] if want else 0) + 1e-6}  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", ["uniform", "clustered", "sparse"])
def test_nearest_matches_brute_force(layout: str) -> None:
    rng = np.random.default_rng({"uniform": 1, "clustered": 2, "sparse": 3}[layout])
    n = {"uniform": 3000, "clustered": 3000, "sparse": 300}[layout]
    if layout == "clustered":  # dense lots, gaps between them
        centres = rng.uniform([31.20, 121.40], [31.26, 121.48], (12, 2))
        pts = centres[rng.integers(0, 12, n)] + rng.normal(0, 0.0008, (n, 2))
    else:
        span = 0.05 if layout == "uniform" else 0.3
        pts = rng.uniform([31.2, 121.4], [31.2 + span, 121.4 + span], (n, 2))
    index = _index(pts[:, 0], pts[:, 1], rng)
    for _ in range(150):
        lat, lon = rng.uniform([31.15, 121.35], [31.3, 121.75])
        query = {"limit": int(rng.integers(1, 40)), "radius_m": float(rng.choice([30, 300, 1500, 20_000])),
                 "now": NOW + float(rng.uniform(-50, 50)), "accessible": bool(rng.random() < 0.2),
                 "ev": bool(rng.random() < 0.2)}
        _check(index, float(lat), float(lon), **query)


def test_json_answer_is_the_rows_serialised() -> None:
    """``nearest_json`` (cached fragments per space) is byte for byte ``orjson.dumps(nearest)``,
    empty answers and repeated spaces included."""
    rng = np.random.default_rng(8)
    pts = rng.uniform([31.2, 121.4], [31.25, 121.45], (2000, 2))
    index = _index(pts[:, 0], pts[:, 1], rng)
    for _ in range(200):
        lat, lon = (float(v) for v in rng.uniform([31.19, 121.39], [31.26, 121.46]))
        query = {"limit": int(rng.integers(1, 30)), "radius_m": float(rng.choice([20, 400, 3000])), "now": NOW,
                 "accessible": bool(rng.random() < 0.2)}
        assert index.nearest_json(lat, lon, **query) == orjson.dumps(index.nearest(lat, lon, **query))  # type: ignore[arg-type]


def test_far_away_and_whole_grid() -> None:
    """A point far outside the grid finds nothing in a small radius, everything in a huge one."""
    rng = np.random.default_rng(5)
    pts = rng.uniform([31.2, 121.4], [31.21, 121.41], (200, 2))
    index = _index(pts[:, 0], pts[:, 1], rng)
    assert index.nearest(40.0, 0.0, limit=10, radius_m=5000, now=NOW) == []
    _check(index, 31.0, 121.0, limit=500, radius_m=100_000, now=NOW)


def test_free_answer_follows_time_and_changes() -> None:
    """Holds end, sensors go stale, and state changes land, without a full rebuild."""
    lat = np.array([31.2, 31.2001, 31.2002])
    lon = np.array([121.4, 121.4, 121.4])
    index = FreeIndex(STALE)
    index._inventory((["a", "b", "c"], ["f", "f", "f"], lat.tolist(), lon.tolist(),
                      [False] * 3, [False] * 3, [False] * 3))
    index.set_states([0, 0, 1], [NOW, NOW - 500, NOW], [NOW + 60, np.nan, np.nan])

    def ids(now: float) -> list[str]:
        return [r["space_id"] for r in index.nearest(31.2, 121.4, limit=5, radius_m=500, now=now)]

    assert ids(NOW) == ["b"]  # a is held, c occupied
    assert ids(NOW + 61) == ["a", "b"]  # a's hold is over
    assert ids(NOW + 101) == ["a"]  # b's sensor went stale (last seen 500 s before NOW)
    index.mark_held("a", NOW + 200)
    assert ids(NOW + 101) == []
    index.state.occupied[index.pos["c"]] = 0  # c reported free (what refresh() does per row)
    index._derive_one(index.pos["c"])
    assert ids(NOW + 101) == ["c"]
    assert ids(NOW + 201) == ["a", "c"]
    assert ids(NOW - 10) == ["b", "c"]  # asking about an earlier moment recomputes, not reuses
    index.apply(Eligibility(closed={"f"}, taken_at=1.0))
    assert ids(NOW + 201) == []


def test_large_grids_find_their_runs_without_the_dense_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(free_index, "MAX_DENSE_CELLS", 0)
    rng = np.random.default_rng(6)
    pts = rng.uniform([31.2, 121.4], [31.25, 121.45], (1500, 2))
    index = _index(pts[:, 0], pts[:, 1], rng)
    assert index._grid is not None
    assert index._grid.start is None
    for _ in range(60):
        lat, lon = rng.uniform([31.19, 121.39], [31.26, 121.46])
        radius = float(rng.choice([100, 800, 5000]))
        _check(index, float(lat), float(lon), limit=int(rng.integers(1, 30)), radius_m=radius, now=NOW)
