"""The pressure map (停车难 map): square cells of ``cell_m`` metres in the UTM zone of the
inventory (the grid of the enforcement hotspots); for each cell holding spaces with data, the
share of the time with data during which at least 85 % of the cell's known spaces were
occupied (``full_share``), its mean occupancy and the share of its space-time with no data.
A gate-counted facility counts in the cell of its entrance with all its spaces.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.times import iso_utc
from app.enforcement.hotspots import utm_srid
from app.management.levels import levels_sql
from app.management.utilization import Period


def _cell(geom: str) -> str:
    return (f"floor(ST_X(ST_Transform({geom}, CAST(:srid AS int))) / CAST(:size AS float8))::int || ':' || "
            f"floor(ST_Y(ST_Transform({geom}, CAST(:srid AS int))) / CAST(:size AS float8))::int")


_CELLS = f"""WITH {levels_sql(space_group=_cell("s.geom"), facility_group=_cell("f.entrance"))},
x AS (SELECT g, extract(epoch FROM t2 - t) AS dt, k, o FROM levels WHERE t2 IS NOT NULL AND k > 0)
SELECT g, sum(dt) AS data_s, coalesce(sum(dt) FILTER (WHERE o * 100 >= 85 * k), 0) AS full_s,
       sum(k * dt) AS known_s, sum(o * dt) AS occupied_s
FROM x GROUP BY g
"""
_SUPPLY = f"""
SELECT g, sum(n) AS spaces FROM (
    SELECT {_cell("s.geom")} AS g, 1 AS n FROM spaces s JOIN facilities f ON f.id = s.facility_id
    WHERE NOT s.no_parking AND NOT f.counted
    UNION ALL
    SELECT {_cell("f.entrance")}, f.capacity FROM facilities f WHERE f.counted AND f.capacity > 0
) AS c GROUP BY g
"""
_SQUARES = """
SELECT i, j, ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(ST_Square(CAST(:size AS float8), i, j,
       ST_SetSRID(ST_MakePoint(0, 0), CAST(:srid AS int))), 4326)), 7)
FROM unnest(CAST(:ci AS int[]), CAST(:cj AS int[])) AS c(i, j)
"""


async def inventory_srid(session: AsyncSession) -> int:
    """EPSG code of the UTM zone of the inventory's centre."""
    row = (await session.execute(text(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(CAST(ST_Extent(entrance) AS geometry)) AS c "
        "FROM facilities) AS x"))).one()
    return utm_srid(row[0] or 0.0, row[1] or 0.0)


async def pressure(session: AsyncSession, *, period: Period, cell_m: float, hold_s: int) -> dict[str, Any]:
    """GeoJSON FeatureCollection of the cells with spaces, sorted by cell."""
    srid = await inventory_srid(session)
    params = {"a": period.since, "b": period.until, "hold": float(hold_s), "srid": srid, "size": cell_m}
    await session.execute(text("SET LOCAL work_mem = '128MB'"))
    figures = {r.g: r for r in await session.execute(text(_CELLS), params)}
    supply = {g: int(n) for g, n in await session.execute(text(_SUPPLY), {"srid": srid, "size": cell_m})}
    keys = sorted(supply, key=lambda g: tuple(int(p) for p in g.split(":")))
    squares = await _squares(session, keys=keys, cell_m=cell_m, srid=srid)
    seconds = (period.until - period.since).total_seconds()
    features = [_feature(g, squares[g], supply[g], figures.get(g), seconds) for g in keys]
    return {"type": "FeatureCollection", "features": features,
            "properties": {"cell_m": cell_m, "srid": srid, "since": iso_utc(period.since),
                           "until": iso_utc(period.until)}}


async def _squares(session: AsyncSession, *, keys: list[str], cell_m: float, srid: int) -> dict[str, Any]:
    cells = [tuple(int(p) for p in g.split(":")) for g in keys]
    rows = await session.execute(text(_SQUARES), {"size": cell_m, "srid": srid, "ci": [c[0] for c in cells],
                                                  "cj": [c[1] for c in cells]})
    return {f"{i}:{j}": json.loads(geometry) for i, j, geometry in rows}


def _feature(g: str, geometry: Any, spaces: int, row: Any, seconds: float) -> dict[str, Any]:
    data_s = float(row.data_s) if row else 0.0
    known_s = float(row.known_s) if row else 0.0
    props = {
        "cell": g, "spaces": spaces,
        "full_share": round(float(row.full_s) / data_s, 6) if data_s else None,
        "mean_occupancy": round(float(row.occupied_s) / known_s, 6) if known_s else None,
        "unknown_share": round(max(0.0, 1 - known_s / (spaces * seconds)), 6) if spaces and seconds else None,
    }
    return {"type": "Feature", "id": g, "geometry": geometry, "properties": props}
