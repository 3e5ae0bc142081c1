"""Patrol route: the active violations nearest an officer, ordered into a short walk.

The tour starts at the officer and visits every stop once (an open path, no return):
nearest neighbour first, then 2-opt segment reversals until none shortens it. Distances are
great-circle metres (walking distance is not known to us; straight lines rank routes alike).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from matching.geo import haversine_m

MAX_2OPT_ROUNDS = 50


def distance_matrix(points: list[tuple[float, float]]) -> np.ndarray:
    """Haversine metres between every pair of ``(lat, lon)`` points."""
    lat, lon = (np.array(c, dtype=float) for c in zip(*points, strict=True))
    return np.asarray(haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :]))


def nearest_neighbour(dist: np.ndarray) -> list[int]:
    """An open path from node 0 always walking to the closest unvisited node."""
    path, left = [0], set(range(1, len(dist)))
    while left:
        here = path[-1]
        nxt = min(left, key=lambda k: (dist[here, k], k))
        path.append(nxt)
        left.remove(nxt)
    return path


def two_opt(path: list[int], dist: np.ndarray) -> list[int]:
    """Reverse segments of an open path (first node fixed) while that shortens it."""
    best = list(path)
    for _ in range(MAX_2OPT_ROUNDS):
        improved = False
        for i in range(1, len(best) - 1):
            for j in range(i + 1, len(best)):
                if _gain(best, dist, i, j) > 1e-9:
                    best[i:j + 1] = reversed(best[i:j + 1])
                    improved = True
        if not improved:
            break
    return best


def _gain(path: list[int], dist: np.ndarray, i: int, j: int) -> float:
    """Metres saved by reversing ``path[i..j]``; the path's end is open (no edge after it)."""
    a, b, c = path[i - 1], path[i], path[j]
    after = path[j + 1] if j + 1 < len(path) else None
    before = dist[a, b] + (dist[c, after] if after is not None else 0.0)
    now = dist[a, c] + (dist[b, after] if after is not None else 0.0)
    return float(before - now)


def path_length(path: list[int], dist: np.ndarray) -> float:
    return float(sum(dist[p, q] for p, q in zip(path, path[1:], strict=False)))


def plan(start: tuple[float, float], stops: list[tuple[float, float]]) -> tuple[list[int], list[float]]:
    """Order of ``stops`` (indices) from ``start`` and the length of each leg in metres."""
    if not stops:
        return [], []
    dist = distance_matrix([start, *stops])
    path = two_opt(nearest_neighbour(dist), dist)
    legs = [float(dist[p, q]) for p, q in zip(path, path[1:], strict=False)]
    return [k - 1 for k in path[1:]], legs


async def patrol(
    session: AsyncSession, *, lat: float, lon: float, limit: int, now: datetime,
    after: tuple[float, int] | None = None, start: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The ``limit`` active violations nearest ``(lat, lon)`` as a walking route from ``start``
    (default the point itself). The next ones are those after the ``after`` of the route's
    ``last`` ((degrees from the point, id): the order of nearness), routed from its last stop;
    ``total`` is how many violations are active."""
    found = (await session.execute(text("""
        SELECT v.id, v.space_id, v.facility_id, v.kind, v.rule_id, v.limit_minutes, v.started_at,
               round(CAST(extract(epoch FROM :now - v.started_at) / 60 AS numeric), 1) AS duration_minutes,
               ST_Y(v.geom) AS lat, ST_X(v.geom) AS lon,
               v.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS nearness
        FROM violations v WHERE v.ended_at IS NULL
          AND (CAST(:after_d AS float8) IS NULL OR (v.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), v.id)
               > (CAST(:after_d AS float8), CAST(:after_id AS bigint)))
        ORDER BY v.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), v.id LIMIT :limit"""),
        {"lat": lat, "lon": lon, "limit": limit + 1, "now": now,
         "after_d": None if after is None else after[0], "after_id": None if after is None else after[1]})
    ).mappings().all()
    more, rows = len(found) > limit, [dict(r) for r in found[:limit]]
    nearness = [r.pop("nearness") for r in rows]
    origin = start or (lat, lon)
    order, legs = plan(origin, [(r["lat"], r["lon"]) for r in rows])
    stops, walked = [], 0.0
    for position, (index, leg) in enumerate(zip(order, legs, strict=True), start=1):
        walked += leg
        stops.append({**rows[index], "order": position, "duration_minutes": float(rows[index]["duration_minutes"]),
                      "leg_m": round(leg, 1), "cumulative_m": round(walked, 1)})
    total = await session.scalar(text("SELECT count(*) FROM violations WHERE ended_at IS NULL"))
    return {"start": {"lat": origin[0], "lon": origin[1]}, "count": len(stops), "stops": stops,
            "total_distance_m": round(walked, 1), "total": int(total or 0),
            "last": (nearness[-1], rows[-1]["id"]) if more else None}
