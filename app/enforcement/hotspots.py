"""Violation hotspots: square grid cells in a metric projection, computed in PostGIS.

Cells are those of ``ST_SquareGrid(cell_m, …)`` in the UTM zone of the area (metres on the
ground, unlike Web Mercator's 1/cos(lat) stretch): a point at ``(x, y)`` lies in cell
``(floor(x / cell_m), floor(y / cell_m))`` and ``ST_Square(cell_m, i, j)`` is its polygon, so the
grouping is plain arithmetic (no spatial join) and only the cells that hold a violation are
ever built. A violation counts in a period when it overlaps it; its minutes are those inside
the period. The rate divides the count by the occupied-space-hours of the cell's spaces in the
period, computed from the occupancy history, so streets with many sensors or much parking do
not dominate merely by their size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput
from app.core.times import iso_utc
from app.enforcement.violations import Query

_CELLS_SQL = """
WITH c AS (
    SELECT floor(ST_X(p) / CAST(:size AS float8))::int AS i, floor(ST_Y(p) / CAST(:size AS float8))::int AS j,
           extract(epoch FROM least(coalesce(v.ended_at, :now), :until) - greatest(v.started_at, :since))
               AS secs,
           extract(hour FROM v.started_at AT TIME ZONE :tz)::int AS h, v.kind
    FROM violations v CROSS JOIN LATERAL ST_Transform(v.geom, CAST(:srid AS int)) AS p
    WHERE {where}
)
SELECT i, j, h, count(*) AS n, sum(greatest(secs, 0)) / 60 AS minutes,
       count(*) FILTER (WHERE kind = 'overstay') AS overstay,
       count(*) FILTER (WHERE kind = 'no_parking') AS no_parking
FROM c GROUP BY i, j, h
"""

# Occupied time per space in [since, until): each event's state lasts until the next event
# (or until the period's end); the state at ``since`` comes from the last event before it.
_EXPOSURE_SQL = """
WITH cells AS (
    SELECT * FROM unnest(CAST(:ci AS int[]), CAST(:cj AS int[])) AS c(i, j)
), inside AS MATERIALIZED (
    SELECT sp.* FROM (
        SELECT s.id, floor(ST_X(p) / CAST(:size AS float8))::int AS i,
               floor(ST_Y(p) / CAST(:size AS float8))::int AS j
        FROM spaces s CROSS JOIN LATERAL ST_Transform(s.geom, CAST(:srid AS int)) AS p
        WHERE s.geom && ST_MakeEnvelope(:ex0, :ey0, :ex1, :ey1, 4326)
    ) AS sp JOIN cells USING (i, j)
), ev AS (
    SELECT e.space_id, e.observed_at, e.seq, e.occupied FROM occupancy_events e
    WHERE e.observed_at >= :since AND e.observed_at < :until
    UNION ALL
    (SELECT DISTINCT ON (e.space_id) e.space_id, CAST(:since AS timestamptz), e.seq, e.occupied
     FROM occupancy_events e
     WHERE e.observed_at < :since AND e.observed_at >= CAST(:since AS timestamptz) - interval '7 days'
     ORDER BY e.space_id, e.observed_at DESC, e.seq DESC NULLS LAST)
), spells AS (
    SELECT space_id, occupied, observed_at AS a,
           coalesce(lead(observed_at) OVER (PARTITION BY space_id COLLATE "C" ORDER BY observed_at, seq NULLS FIRST),
                    least(:now, :until)) AS b
    FROM ev
)
SELECT inside.i, inside.j, sum(greatest(extract(epoch FROM spells.b - spells.a), 0)) / 3600 AS hours
FROM spells JOIN inside ON inside.id = spells.space_id
WHERE spells.occupied GROUP BY inside.i, inside.j
"""


@dataclass(frozen=True)
class Grid:
    cell_m: float
    srid: int


def utm_srid(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing the point."""
    zone = min(60, int(math.floor((lon + 180) / 6)) + 1)
    return (32600 if lat >= 0 else 32700) + zone


async def grid_for(session: AsyncSession, *, cell_m: float, query: Query) -> Grid:
    """The grid of the area: UTM zone of the bbox's centre, else of the inventory's centre."""
    if query.bbox is not None:
        minx, miny, maxx, maxy = query.bbox
        return Grid(cell_m, utm_srid((minx + maxx) / 2, (miny + maxy) / 2))
    row = (await session.execute(text(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(CAST(ST_Extent(entrance) AS geometry)) AS c "
        "FROM facilities) AS x"))).one()
    return Grid(cell_m, utm_srid(row[0] or 0.0, row[1] or 0.0))


async def hotspots(
    session: AsyncSession, *, query: Query, cell_m: float, now: datetime, tz: str, by_hour: bool = False,
    limit: int | None = None, after: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """GeoJSON FeatureCollection of the grid cells with violations in ``[query.since, query.until)``,
    by cell (column, row): the first ``limit`` after the cell ``after``. ``properties`` say how
    many cells there are in all (``cells``) and, when more follow, the page's last cell
    (``last_cell``, the next page's ``after``)."""
    if query.since is None or query.until is None:
        raise InvalidInput("hotspots need a period (since and until)")
    grid = await grid_for(session, cell_m=cell_m, query=query)
    await session.execute(text("SET LOCAL work_mem = '128MB'"))  # the sorts below stay in memory
    rows = await _cell_rows(session, grid=grid, query=query, now=now, tz=tz)
    cells = _totals(rows)
    ordered = [(key, cell) for key, cell in sorted(cells.items()) if after is None or key > after]
    page = ordered if limit is None else ordered[:limit]
    geometries = await _squares(session, grid=grid, cells=[key for key, _ in page])
    exposure = await _exposure(session, grid=grid, cells=geometries, query=query, now=now)
    profiles = _profiles(rows) if by_hour else {}
    features = [_feature(key, cell, geometries[key], exposure.get(key, 0.0), profiles.get(key))
                for key, cell in page]
    more = len(ordered) > len(page)
    return {"type": "FeatureCollection", "features": features,
            "properties": {"cell_m": cell_m, "srid": grid.srid, "since": iso_utc(query.since),
                           "until": iso_utc(query.until), "count": sum(c["n"] for c in cells.values()),
                           "cells": len(cells), "last_cell": list(page[-1][0]) if more else None}}


async def _cell_rows(
    session: AsyncSession, *, grid: Grid, query: Query, now: datetime, tz: str
) -> list[dict[str, Any]]:
    """Counts and minutes per cell and local hour of the start (a cell's totals are their sums)."""
    where, params = query.where()
    result = await session.execute(text(_CELLS_SQL.format(where=where)), {
        **params, "size": grid.cell_m, "srid": grid.srid, "now": now, "tz": tz})
    return [dict(row) for row in result.mappings()]


def _totals(rows: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for row in rows:
        cell = cells.setdefault((row["i"], row["j"]), {"n": 0, "minutes": 0.0, "overstay": 0, "no_parking": 0})
        for key in ("n", "overstay", "no_parking"):
            cell[key] += row[key]
        cell["minutes"] += float(row["minutes"] or 0)
    return cells


async def _exposure(
    session: AsyncSession, *, grid: Grid, cells: dict[tuple[int, int], Any], query: Query, now: datetime
) -> dict[tuple[int, int], float]:
    """Occupied-space-hours of the spaces in ``cells`` (cell → its lon/lat polygon)."""
    if not cells:
        return {}
    corners = [xy for polygon in cells.values() for xy in polygon["coordinates"][0]]
    envelope = dict(zip(("ex0", "ey0", "ex1", "ey1"), (
        min(x for x, _ in corners), min(y for _, y in corners),
        max(x for x, _ in corners), max(y for _, y in corners)), strict=True))
    rows = await session.execute(text(_EXPOSURE_SQL), {
        "ci": [c[0] for c in cells], "cj": [c[1] for c in cells], "size": grid.cell_m, **envelope,
        "srid": grid.srid, "since": query.since, "until": query.until, "now": now})
    return {(i, j): float(hours) for i, j, hours in rows}


async def _squares(session: AsyncSession, *, grid: Grid, cells: list[tuple[int, int]]) -> dict[tuple[int, int], Any]:
    rows = await session.execute(text(
        "SELECT i, j, ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(ST_Square(CAST(:size AS float8), i, j, "
        "ST_SetSRID(ST_MakePoint(0, 0), CAST(:srid AS int))), 4326)), 7) "
        "FROM unnest(CAST(:ci AS int[]), CAST(:cj AS int[])) AS c(i, j)"),
        {"size": grid.cell_m, "srid": grid.srid, "ci": [c[0] for c in cells], "cj": [c[1] for c in cells]})
    return {(i, j): json.loads(geometry) for i, j, geometry in rows}


def _profiles(rows: list[dict[str, Any]]) -> dict[tuple[int, int], list[int]]:
    out: dict[tuple[int, int], list[int]] = {}
    for r in rows:
        out.setdefault((r["i"], r["j"]), [0] * 24)[r["h"]] = r["n"]
    return out


def _feature(
    key: tuple[int, int], cell: dict[str, Any], geometry: Any, hours: float, profile: list[int] | None
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "cell": f"{key[0]}:{key[1]}", "count": cell["n"],
        "minutes_in_violation": round(float(cell["minutes"] or 0), 1),
        "overstay": cell["overstay"], "no_parking": cell["no_parking"],
        "occupied_space_hours": round(hours, 2),
        "violations_per_occupied_space_hour": round(cell["n"] / hours, 4) if hours > 0 else None,
    }
    if profile is not None:
        props["by_hour"] = profile
    return {"type": "Feature", "id": props["cell"], "geometry": geometry, "properties": props}
