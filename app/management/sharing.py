"""Shared parking (停车资源共享): for each facility with ``public_hours``, how it is used inside
and outside its public windows, to the second (windows need not fall on whole hours).

- ``occupancy_public`` / ``occupancy_private``: occupied share of the known space-time inside /
  outside the windows (the reading rule of :mod:`app.management.levels`);
- ``offered_space_hours``: spaces × hours of public window in the period; ``used_space_hours``:
  the occupied space-hours inside them; ``unknown_public_share``: the offered part with no data;
- ``public_entry_share``: of the facility's unvoided entries (gate passages) in the period, the
  share made inside a public window — the passages' word on how much of the use is the
  public's (None when the facility reports no passages).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import hours
from app.management.levels import levels_sql
from app.management.utilization import Period

COLUMNS = ("facility_id", "facility_name", "public_hours", "spaces", "occupancy_public", "occupancy_private",
           "offered_space_hours", "used_space_hours", "unknown_public_share", "entries", "public_entry_share")
_LEVELS = f"""WITH {levels_sql(space_group="s.facility_id", facility_group="f.id",
                               where="f.public_hours IS NOT NULL")}
SELECT g, t AS t1, t2, k::float8 AS k, o::float8 AS o FROM levels WHERE t2 IS NOT NULL AND k > 0 ORDER BY g, t"""
_FACILITIES = """
SELECT f.id, f.name, f.public_hours, f.timezone, CASE WHEN f.counted THEN f.capacity ELSE
       (SELECT count(*) FROM spaces s WHERE s.facility_id = f.id AND NOT s.no_parking) END AS spaces
FROM facilities f WHERE f.public_hours IS NOT NULL ORDER BY f.id
"""
_ENTRIES = """
SELECT facility_id, observed_at FROM passages
WHERE direction = 'in' AND voided_by IS NULL AND observed_at >= :a AND observed_at < :b
  AND facility_id IN (SELECT id FROM facilities WHERE public_hours IS NOT NULL)
"""


def windows(spec: str, tz: str, period: Period) -> list[tuple[datetime, datetime]]:
    """The public windows of ``spec`` (local to ``tz``) that overlap ``period``, merged, clipped."""
    zone, spans = ZoneInfo(tz), hours.parse(spec)
    day = period.since.astimezone(zone).date() - timedelta(days=1)
    out: list[tuple[datetime, datetime]] = []
    while datetime.combine(day, time(), tzinfo=zone) < period.until:
        for span in spans:
            if span.day_mask >> day.weekday() & 1:
                start = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=span.start_min)
                out.append((max(start, period.since), min(start + timedelta(minutes=span.minutes), period.until)))
        day += timedelta(days=1)
    return _merge([w for w in out if w[1] > w[0]])


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def inside_seconds(a: datetime, b: datetime, wins: list[tuple[datetime, datetime]]) -> float:
    """Seconds of ``[a, b)`` inside the (sorted, disjoint) windows."""
    return sum(max(0.0, (min(b, z) - max(a, w)).total_seconds()) for w, z in wins if w < b and z > a)


async def sharing(session: AsyncSession, *, period: Period, hold_s: int) -> list[dict[str, Any]]:
    """One item per facility with public hours, sorted by id."""
    params = {"a": period.since, "b": period.until, "hold": float(hold_s)}
    levels: dict[str, list[Any]] = {}
    for row in await session.execute(text(_LEVELS), params):
        levels.setdefault(row.g, []).append(row)
    entries: dict[str, list[datetime]] = {}
    for fid, at in await session.execute(text(_ENTRIES), params):
        entries.setdefault(fid, []).append(at)
    facilities = (await session.execute(text(_FACILITIES))).all()
    return [_item(f, levels.get(f.id, []), entries.get(f.id, []), period) for f in facilities]


def _item(fac: Any, rows: list[Any], entries: list[datetime], period: Period) -> dict[str, Any]:
    wins = windows(fac.public_hours, fac.timezone, period)
    sums = {"kin": 0.0, "oin": 0.0, "kout": 0.0, "oout": 0.0}
    for r in rows:
        dt, inside = (r.t2 - r.t1).total_seconds(), inside_seconds(r.t1, r.t2, wins)
        sums["kin"] += r.k * inside
        sums["oin"] += r.o * inside
        sums["kout"] += r.k * (dt - inside)
        sums["oout"] += r.o * (dt - inside)
    offered = fac.spaces * sum((z - w).total_seconds() for w, z in wins)
    public_entries = sum(1 for at in entries if inside_seconds(at, at + timedelta(microseconds=1), wins) > 0)
    return {
        "facility_id": fac.id, "facility_name": fac.name, "public_hours": fac.public_hours, "spaces": fac.spaces,
        "occupancy_public": _ratio(sums["oin"], sums["kin"]), "occupancy_private": _ratio(sums["oout"], sums["kout"]),
        "offered_space_hours": round(offered / 3600, 3), "used_space_hours": round(sums["oin"] / 3600, 3),
        "unknown_public_share": _ratio(offered - sums["kin"], offered, floor=0.0),
        "entries": len(entries), "public_entry_share": _ratio(public_entries, len(entries)),
    }


def _ratio(a: float, b: float, floor: float | None = None) -> float | None:
    if not b:
        return None
    value = a / b
    return round(value if floor is None else max(floor, value), 6)
