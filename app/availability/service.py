"""Live availability of facilities, in FIWARE's status vocabulary, and occupancy history.

Free spaces are counted from the current state, never from guesses:

- a sensor facility's ``free`` = its parkable spaces (not marked ``no_parking``) whose sensor
  reported *free* and that no active assignment holds; a space whose sensor is silent longer
  than ``stale_after_s`` (``space_state.last_seen``, the rule of ``app/occupancy/staleness.py``)
  is unknown, and a facility where fewer
  than half of the spaces are known reads ``unknown`` with ``free = None``;
- a gate-counted facility's ``free`` = its last count (if not stale) minus facility-level
  holds, clamped to ``0..total``;
- a facility closed by flag, outside its ``opening_hours`` or (shared lots, 停车资源共享)
  outside its ``public_hours``, or under a facility-wide no-parking rule in force, reads
  ``closed`` with ``free = 0``.

``free`` is never above ``total``. ``distance_m`` is measured to the facility's entrance (where
a driver heads), which is also the ``lat``/``lon`` returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from pydantic import Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import hours
from app.core.errors import InvalidInput, NotFound
from app.core.times import iso_utc
from app.occupancy.staleness import fresh_sql
from matching.geo import haversine_m

STATUSES = ("spacesAvailable", "almostFull", "full", "closed", "unknown")
ALMOST_FULL_FRACTION = 0.1  # fewer than 10 % of the spaces free reads almostFull
MIN_KNOWN_FRACTION = 0.5  # below this share of spaces with a fresh reading, a facility is unknown
HISTORY_MAX_POINTS = 2000
HISTORY_LOOKBACK = timedelta(hours=24)  # how far before `since` the state at `since` is sought
HISTORY_FIRST, HISTORY_LAST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)

_NOW = "CAST(:now AS timestamptz)"
_SNAPSHOT_SQL = text(f"""
WITH held AS (
    SELECT space_id, facility_id FROM assignments
    WHERE status IN ('held', 'reassigned') AND hold @> CAST(:now AS timestamptz)
), per_space AS (
    SELECT sp.facility_id, sp.accessible, sp.ev, sp.no_parking, st.observed_at,
           (st.occupied IS NOT NULL AND {fresh_sql("st", now=_NOW)}) AS fresh,
           (st.occupied IS FALSE AND h.space_id IS NULL) AS free
    FROM spaces sp
    LEFT JOIN space_state st ON st.space_id = sp.id
    LEFT JOIN held h ON h.space_id = sp.id
), agg AS (
    SELECT facility_id,
           count(*) FILTER (WHERE NOT no_parking) AS parkable,
           count(*) FILTER (WHERE NOT no_parking AND fresh) AS known,
           count(*) FILTER (WHERE NOT no_parking AND fresh AND free) AS free,
           count(*) FILTER (WHERE NOT no_parking AND accessible) AS accessible_total,
           count(*) FILTER (WHERE NOT no_parking AND accessible AND fresh AND free) AS accessible_free,
           count(*) FILTER (WHERE NOT no_parking AND ev) AS ev_total,
           count(*) FILTER (WHERE NOT no_parking AND ev AND fresh AND free) AS ev_free,
           max(observed_at) FILTER (WHERE fresh) AS observed_at
    FROM per_space GROUP BY facility_id
), facility_holds AS (
    SELECT facility_id, count(*) AS n FROM held WHERE space_id IS NULL GROUP BY facility_id
), closing_rules AS (
    SELECT facility_id, array_agg(json_build_array(day_mask, start_time::text, end_time::text, timezone))
           AS rules
    FROM parking_rules WHERE kind = 'no_parking' AND facility_id IS NOT NULL GROUP BY facility_id
)
SELECT f.id, f.name, f.kind, f.operator_id, f.capacity, f.counted, f.closed,
       f.opening_hours, f.public_hours, f.fee,
       ST_Y(f.entrance) AS lat, ST_X(f.entrance) AS lon,
       ST_AsGeoJSON(ST_ForcePolygonCCW(f.geom), 7) AS geometry,
       coalesce(a.parkable, 0) AS parkable, coalesce(a.known, 0) AS known,
       coalesce(a.free, 0) AS space_free, a.observed_at AS space_observed_at,
       coalesce(a.accessible_total, 0) AS accessible_total, coalesce(a.accessible_free, 0) AS accessible_free,
       coalesce(a.ev_total, 0) AS ev_total, coalesce(a.ev_free, 0) AS ev_free,
       c.free AS count_free, c.total AS count_total, c.observed_at AS count_observed_at,
       (c.observed_at IS NOT NULL AND {fresh_sql("c", now=_NOW)}) AS count_fresh,
       coalesce(fh.n, 0) AS facility_holds, cr.rules AS closing_rules
FROM facilities f
LEFT JOIN agg a ON a.facility_id = f.id
LEFT JOIN facility_counts c ON c.facility_id = f.id AND f.counted
LEFT JOIN facility_holds fh ON fh.facility_id = f.id
LEFT JOIN closing_rules cr ON cr.facility_id = f.id
{{where}}
ORDER BY f.id
""")


@dataclass(frozen=True)
class FacilityAvailability:
    """One facility's live numbers and the attributes drivers ask for next to them."""

    id: str
    name: str
    kind: str
    operator_id: str
    free: int | None
    total: int
    status: str
    observed_at: datetime | None
    lat: float
    lon: float
    counted: bool
    opening_hours: str
    public_hours: str | None
    fee: str | None
    open_now: bool
    unknown_spaces: int
    accessible_total: int
    accessible_free: int | None
    ev_total: int
    ev_free: int | None
    geometry: dict[str, Any] = field(repr=False, compare=False)
    no_parking: bool = False  # a facility-wide no-parking rule in force (a 禁停 stretch), not merely closed

    def public_dict(self, distance_m: float | None = None) -> dict[str, Any]:
        """The JSON fields of the list endpoint (geometry is only in GeoJSON/FIWARE exports)."""
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "operator_id": self.operator_id,
            "free": self.free, "total": self.total, "status": self.status,
            "observed_at": iso_utc(self.observed_at) if self.observed_at else None,
            "distance_m": None if distance_m is None else round(distance_m, 1),
            "lat": self.lat, "lon": self.lon, "counted": self.counted, "open_now": self.open_now,
            "unknown_spaces": self.unknown_spaces, "no_parking": self.no_parking,
        }


@dataclass(frozen=True)
class Snapshot:
    """Every facility's availability at one moment, ready to be filtered and served fast:
    coordinate and kind arrays for vectorised lookups, each facility's JSON fields prebuilt."""

    items: list[FacilityAvailability]
    taken_at: datetime
    lat: np.ndarray = field(repr=False)
    lon: np.ndarray = field(repr=False)
    kinds: np.ndarray = field(repr=False)
    public: list[dict[str, Any]] = field(repr=False)

    def near(
        self, *, lat: float | None, lon: float | None, radius_m: float, kind: str | None = None,
        limit: int = 100,
    ) -> list[tuple[int, float | None]]:
        """(index, distance_m) of facilities by distance from (lat, lon) within ``radius_m``;
        all facilities by id, without distances, when no point is given."""
        keep = np.ones(len(self.items), dtype=bool) if kind is None else self.kinds == kind
        if lat is None or lon is None:
            return [(int(i), None) for i in np.flatnonzero(keep)[:limit]]
        dist = haversine_m(lat, lon, self.lat, self.lon)
        idx = np.flatnonzero(keep & (dist <= radius_m))
        idx = idx[np.argsort(dist[idx], kind="stable")][:limit]
        return [(int(i), float(dist[i])) for i in idx]

    def rows(self, hits: list[tuple[int, float | None]]) -> list[dict[str, Any]]:
        """The list endpoint's JSON objects of ``near``'s hits."""
        return [{**self.public[i], "distance_m": None if d is None else round(d, 1)} for i, d in hits]



async def snapshot(session: AsyncSession, *, now: datetime, stale_after_s: int, timezone: str) -> Snapshot:
    """Availability of every facility at ``now`` (one aggregate query)."""
    rows = await _rows(session, now=now, stale_after_s=stale_after_s)
    local = now.astimezone(ZoneInfo(timezone))
    items = [_availability(row, local) for row in rows]
    lat = np.array([i.lat for i in items], dtype=float)
    lon = np.array([i.lon for i in items], dtype=float)
    kinds = np.array([i.kind for i in items], dtype=object)
    return Snapshot(items, now, lat, lon, kinds, [i.public_dict() for i in items])


async def facility(
    session: AsyncSession, *, facility_id: str, now: datetime, stale_after_s: int, timezone: str
) -> FacilityAvailability:
    """One facility's availability; NotFound if there is none with that id."""
    rows = await _rows(session, now=now, stale_after_s=stale_after_s, facility_id=facility_id)
    if not rows:
        raise NotFound(f"no facility {facility_id!r}")
    return _availability(rows[0], now.astimezone(ZoneInfo(timezone)))


async def _rows(
    session: AsyncSession, *, now: datetime, stale_after_s: int, facility_id: str | None = None
) -> list[Any]:
    where = "WHERE f.id = :facility_id" if facility_id is not None else ""
    stmt = text(_SNAPSHOT_SQL.text.replace("{where}", where))
    params: dict[str, Any] = {"now": now, "stale": float(stale_after_s)}
    if facility_id is not None:
        params["facility_id"] = facility_id
    return list((await session.execute(stmt, params)).mappings())


def _availability(row: Any, local_now: datetime) -> FacilityAvailability:
    open_now = _open_now(row, local_now)
    total, free, observed_at = _numbers(row)
    known_extras = free is not None and not row["counted"]
    status = status_of(open_now=open_now, total=total, free=free)
    if status == "closed":
        free = 0
    return FacilityAvailability(
        id=row["id"], name=row["name"], kind=row["kind"], operator_id=row["operator_id"],
        free=free, total=total, status=status, observed_at=observed_at,
        lat=float(row["lat"]), lon=float(row["lon"]), counted=row["counted"],
        opening_hours=row["opening_hours"], public_hours=row["public_hours"], fee=row["fee"],
        open_now=open_now, unknown_spaces=0 if row["counted"] else row["parkable"] - row["known"],
        accessible_total=row["accessible_total"],
        accessible_free=row["accessible_free"] if known_extras and open_now else None,
        ev_total=row["ev_total"], ev_free=row["ev_free"] if known_extras and open_now else None,
        geometry=_json(row["geometry"]),
        no_parking=any(_rule_in_force(rule, local_now) for rule in row["closing_rules"] or ()),
    )


async def facility_rules(session: AsyncSession, *, facility_id: str) -> list[dict[str, Any]]:
    """The parking rules standing on a facility (for all its spaces), as drivers read them."""
    rows = await session.execute(text(
        "SELECT kind, max_stay_minutes, days, to_char(start_time, 'HH24:MI') AS start, "
        "CASE WHEN end_time = '00:00' THEN '24:00' ELSE to_char(end_time, 'HH24:MI') END AS end "
        "FROM parking_rules "
        "WHERE facility_id = :id ORDER BY id"), {"id": facility_id})
    return [dict(r) for r in rows.mappings()]


def _json(raw: str) -> Any:
    return orjson.loads(raw)


def _numbers(row: Any) -> tuple[int, int | None, datetime | None]:
    """(total, free or None when unknown, observed_at) of a row of the snapshot query."""
    if row["counted"]:
        total = row["count_total"] if row["count_total"] is not None else row["capacity"]
        if not row["count_fresh"] or row["count_free"] is None:
            return total, None, row["count_observed_at"]
        free = max(0, min(total, row["count_free"] - row["facility_holds"]))
        return total, free, row["count_observed_at"]
    total = row["parkable"]
    if total and row["known"] < total * MIN_KNOWN_FRACTION:
        return total, None, row["space_observed_at"]
    return total, min(total, row["space_free"]), row["space_observed_at"]


def _open_now(row: Any, local_now: datetime) -> bool:
    if row["closed"]:
        return False
    if not hours.is_open(row["opening_hours"], local_now) or not hours.is_open(row["public_hours"], local_now):
        return False
    return not any(_rule_in_force(rule, local_now) for rule in row["closing_rules"] or ())


def _rule_in_force(rule: Any, local_now: datetime) -> bool:
    """A facility-wide no-parking rule ``[day_mask, "HH:MM:SS", "HH:MM:SS", tz]`` at ``local_now``."""
    day_mask, start, end, _tz = rule if isinstance(rule, list) else _json(rule)
    start_min = int(start[:2]) * 60 + int(start[3:5])
    minutes = hours.span_minutes(start_min, int(end[:2]) * 60 + int(end[3:5]))
    for back in (0, 1):  # a window may have begun yesterday and run past midnight
        day = local_now - timedelta(days=back)
        begin = day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=start_min)
        if day_mask >> day.weekday() & 1 and begin <= local_now < begin + timedelta(minutes=minutes):
            return True
    return False


def status_of(*, open_now: bool, total: int, free: int | None) -> str:
    """FIWARE status: ``closed``, ``unknown``, ``full``, ``almostFull`` or ``spacesAvailable``."""
    if not open_now or total == 0:
        return "closed"
    if free is None:
        return "unknown"
    if free == 0:
        return "full"
    return "almostFull" if free < total * ALMOST_FULL_FRACTION else "spacesAvailable"


# --- history -------------------------------------------------------------------------------

_SPACE_HISTORY_SQL = text("""
WITH fs AS (
    SELECT id FROM spaces WHERE facility_id = :facility_id AND NOT no_parking
), ev AS (
    SELECT e.space_id, e.observed_at, e.occupied,
           lag(e.occupied) OVER (PARTITION BY e.space_id ORDER BY e.observed_at, e.seq NULLS FIRST) AS prev
    FROM occupancy_events e
    WHERE e.space_id IN (SELECT id FROM fs)
      AND e.observed_at > CAST(:since AS timestamptz) - CAST(:lookback AS interval)
      AND e.observed_at <= CAST(:until AS timestamptz)
), deltas AS (
    -- each change of a space's state lands in the first step at or after it
    SELECT greatest(0, ceil(extract(epoch FROM observed_at - CAST(:since AS timestamptz)) / :step))::int AS k,
           sum(occupied::int - coalesce(prev::int, 0)) AS d_occupied,
           sum(CASE WHEN prev IS NULL THEN 1 ELSE 0 END) AS d_known
    FROM ev WHERE prev IS DISTINCT FROM occupied
    GROUP BY 1
)
SELECT k, CAST(:since AS timestamptz) + make_interval(secs => k * :step) AS at,
       sum(coalesce(d_occupied, 0)) OVER w AS occupied, sum(coalesce(d_known, 0)) OVER w AS known,
       (SELECT count(*) FROM fs) AS total
FROM generate_series(0, :n) AS k LEFT JOIN deltas USING (k)
WINDOW w AS (ORDER BY k)
ORDER BY k
""")

_COUNT_HISTORY_SQL = text("""
SELECT k, t AS at, c.free, coalesce(c.total, f.capacity) AS total
FROM facilities f,
     generate_series(0, :n) AS k,
     LATERAL (SELECT CAST(:since AS timestamptz) + make_interval(secs => k * :step) AS t) ts
LEFT JOIN LATERAL (
    SELECT free, total FROM count_events
    WHERE facility_id = :facility_id AND observed_at <= ts.t
      AND observed_at > ts.t - CAST(:lookback AS interval)
    ORDER BY observed_at DESC LIMIT 1
) c ON true
WHERE f.id = :facility_id
ORDER BY k
""")


@dataclass(frozen=True)
class HistoryPoint:
    """One point of a facility's history (also the API's schema for it)."""

    at: datetime
    free: int | None
    occupied: int | None
    total: int
    occupancy: Annotated[float | None, Field(description="occupied share of the spaces with a known state")]


async def history(
    session: AsyncSession, *, facility_id: str, since: datetime, until: datetime, step_s: int,
) -> list[HistoryPoint]:
    """Occupancy at ``since``, ``since + step``, … ``until`` from the event history.

    Sensor facilities: one pass over the events — each change of a space's state becomes a
    +1/−1 in the step bucket where it lands, and a running sum gives the occupancy at each
    step (a space whose last event is more than 24 h before ``since`` starts unknown).
    Gate-counted facilities: the last count at or before each step.
    """
    n = _history_steps(since, until, step_s)
    counted = (await session.execute(
        text("SELECT counted FROM facilities WHERE id = :id"), {"id": facility_id})).scalar_one_or_none()
    if counted is None:
        raise NotFound(f"no facility {facility_id!r}")
    params = {"facility_id": facility_id, "since": since, "step": float(step_s), "n": n,
              "lookback": HISTORY_LOOKBACK, "until": until}
    if counted:
        del params["until"]
        rows = (await session.execute(_COUNT_HISTORY_SQL, params)).mappings()
        return [_count_point(r) for r in rows]
    rows = (await session.execute(_SPACE_HISTORY_SQL, params)).mappings()
    return [_space_point(r) for r in rows]


def _history_steps(since: datetime, until: datetime, step_s: int) -> int:
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("since and until need a UTC offset (RFC 3339)")
    if until < since:
        raise InvalidInput("until is before since")
    if not (HISTORY_FIRST <= since and until <= HISTORY_LAST):
        raise InvalidInput("since and until must lie between 2000 and 2100")
    n = int((until - since).total_seconds() // step_s)
    if n + 1 > HISTORY_MAX_POINTS:
        raise InvalidInput(f"more than {HISTORY_MAX_POINTS} points: use a larger step or a shorter range")
    return n


def _space_point(row: Any) -> HistoryPoint:
    total, known, occupied = int(row["total"]), int(row["known"]), int(row["occupied"])
    if total and known < total * MIN_KNOWN_FRACTION:
        return HistoryPoint(row["at"], None, None, total, None)
    free = known - occupied
    return HistoryPoint(row["at"], free, occupied, total, round(occupied / known, 4) if known else None)


def _count_point(row: Any) -> HistoryPoint:
    total = int(row["total"])
    if row["free"] is None:
        return HistoryPoint(row["at"], None, None, total, None)
    free = max(0, min(total, int(row["free"])))
    return HistoryPoint(row["at"], free, total - free, total, round((total - free) / total, 4) if total else None)
