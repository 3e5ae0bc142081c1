"""Utilization from the hourly rollups, grouped by facility, zone, local hour or weekday.

Figures are over whole UTC hours (``since`` rounded down, ``until`` up, capped at the
rollups' watermark). Occupancies and the full/idle shares are fractions of the time *with
data*: ``mean_occupancy`` = occupied / known space-seconds; ``full_share`` / ``idle_share`` =
share of the facility-time with data at ≥ 85 % / < 30 % of its known spaces occupied;
``unknown_share`` = share of the supply's space-seconds with no (or stale) data;
``turnover_per_space_day`` = stays per known space-day; stays are those that ended in the
period; the median is the lower median of their lengths in whole minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

By = Literal["facility", "zone", "hour", "weekday"]
COLUMNS = ("key", "mean_occupancy", "peak_occupancy", "full_share", "idle_share", "unknown_share",
           "turnover_per_space_day", "mean_stay_minutes", "median_stay_minutes", "stays", "space_hours")
# A zone is the facility's own group when the inventory names one (attrs ``zone``, ``district``
# or ``street``), else the square cell of ``zone_m`` metres holding its entrance, in the UTM
# zone of the inventory (the enforcement hotspots' grid).
_ZONE = ("coalesce(f.attrs->>'zone', f.attrs->>'district', f.attrs->>'street', "
         "'cell:' || floor(ST_X(ST_Transform(f.entrance, CAST(:srid AS int))) / CAST(:zone_m AS float8))::int"
         " || ':' || "
         "floor(ST_Y(ST_Transform(f.entrance, CAST(:srid AS int))) / CAST(:zone_m AS float8))::int)")
KEYS: dict[str, str] = {
    "facility": "f.id",
    "zone": _ZONE,
    "hour": "r.local_hour",
    "weekday": "r.local_weekday",
}

_FIGURES = """
SELECT {key} AS key, sum(r.occupied_s) / nullif(sum(r.known_s), 0) AS mean_occupancy,
       max(r.peak) AS peak_occupancy, sum(r.full_s) / nullif(sum(r.data_s), 0) AS full_share,
       sum(r.idle_s) / nullif(sum(r.data_s), 0) AS idle_share,
       greatest(0, 1 - sum(r.known_s) / nullif(sum(r.space_s), 0)) AS unknown_share,
       sum(r.stays) / nullif(sum(r.known_s) / 86400, 0) AS turnover_per_space_day,
       sum(r.stay_s) / nullif(sum(r.stays), 0) / 60 AS mean_stay_minutes, sum(r.stays) AS stays,
       sum(r.space_s) / 3600 AS space_hours
FROM management_hourly r JOIN facilities f ON f.id = r.facility_id
WHERE r.hour >= :since AND r.hour < :until {where}
GROUP BY 1
"""

_MEDIANS = """
WITH m AS (
    SELECT {key} AS key, r.minutes, sum(r.n) AS n
    FROM management_stays r JOIN facilities f ON f.id = r.facility_id
    WHERE r.hour >= :since AND r.hour < :until {where} GROUP BY 1, 2
), c AS (
    SELECT key, minutes, sum(n) OVER (PARTITION BY key ORDER BY minutes) AS cum, sum(n) OVER (PARTITION BY key) AS tot
    FROM m
)
SELECT key, min(minutes) AS median FROM c WHERE cum * 2 >= tot GROUP BY key
"""


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime


async def utilization(
    session: AsyncSession, *, period: Period, by: By, srid: int = 32651, zone_m: float = 500.0,
    facility_id: str | None = None,
) -> list[dict[str, Any]]:
    """One item per group, sorted by key (see the module's docstring for the figures)."""
    where = "AND f.id = :facility_id" if facility_id else ""
    params = {"since": period.since, "until": period.until, "srid": srid, "zone_m": zone_m,
              "facility_id": facility_id}
    key = KEYS[by]
    rows = (await session.execute(text(_FIGURES.format(key=key, where=where)), params)).mappings().all()
    medians: dict[Any, int] = dict((await session.execute(text(_MEDIANS.format(key=key, where=where)), params)).all())
    return [_item(dict(row), medians.get(row["key"]), by) for row in sorted(rows, key=lambda r: r["key"])]


async def heat(session: AsyncSession, *, period: Period, facility_id: str) -> list[dict[str, Any]]:
    """A facility's mean occupancy by local weekday (1 = Monday) × hour: ``{weekday, hour, occupancy}``."""
    rows = await session.execute(text(
        "SELECT r.local_weekday AS weekday, r.local_hour AS hour, "
        "sum(r.occupied_s) / nullif(sum(r.known_s), 0) AS occupancy, "
        "greatest(0, 1 - sum(r.known_s) / nullif(sum(r.space_s), 0)) AS unknown_share "
        "FROM management_hourly r "
        "WHERE r.facility_id = :fid AND r.hour >= :since AND r.hour < :until GROUP BY 1, 2 ORDER BY 1, 2"),
        {"fid": facility_id, "since": period.since, "until": period.until})
    return [{"weekday": r.weekday, "hour": r.hour, "occupancy": _round(r.occupancy),
             "unknown_share": _round(r.unknown_share)} for r in rows]


def _item(row: dict[str, Any], median: int | None, by: str) -> dict[str, Any]:
    out = {k: _round(row.get(k)) for k in COLUMNS if k not in ("key", "stays")}
    key = f"{row['key']:02d}" if by == "hour" else str(row["key"])
    return {"key": key, **out, "median_stay_minutes": median, "stays": int(row["stays"] or 0)}


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


async def facility_exists(session: AsyncSession, *, facility_id: str) -> bool:
    found = await session.execute(text("SELECT 1 FROM facilities WHERE id = :id"), {"id": facility_id})
    return found.first() is not None
