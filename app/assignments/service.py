"""Driver assignments: candidates from PostGIS, decisions from ``matching``, holds in PostgreSQL.

Flow of ``POST /v1/assignments``: the request joins the current batch (``matching_runtime``);
the batch's candidates come from the process's in-memory free-space index (one PostGIS KNN
query while the index is not loaded), the pure engine solves the batch optimally and each
request gets its ordered options (its own pick first). Holds are then written by the process's
group-commit writer — the holds of every request waiting, in one ``INSERT … SELECT FROM unnest
… ON CONFLICT DO NOTHING`` against the exclusion constraint and one commit — each request
taking its next option if another process won the space. Correctness never depends on the
batch or the index: the database admits at most one active hold per space, and only on a space
its sensor reports free.

When a held space is reported occupied, :func:`handle_lost_holds` decides: the driver's last
position within ``arrival_radius_m`` means they arrived; otherwise it is someone else, and the
driver is re-assigned with :func:`matching.reassign` (monotone: nearby holders move only to
spaces no worse for them).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

import matching
from app.assignments import sql
from app.assignments.eligibility import Eligibility
from app.assignments.free_index import FreeIndex
from app.core.errors import InvalidInput, NoFreeSpace, NotFound
from app.core.settings import Settings
from app.forecast import service as forecast_service
from app.keys.service import Principal
from matching import solve
from matching.cost import driver_columns, space_columns
from matching.geo import haversine_m, project

MODEL = matching.CostModel()
MAX_LIMIT = 100
TERMINAL = ("arrived", "expired", "cancelled", "lost")


@dataclass(frozen=True)
class AssignmentRequest:
    """What a driver asks for (validated)."""

    lat: float
    lon: float
    dest_lat: float | None = None
    dest_lon: float | None = None
    accessible: bool = False
    ev: bool = False
    radius_m: float = 1000.0
    stay_minutes: float | None = None
    eta_min: float | None = None  # minutes to arrival, when the driver says (issue 17)

    @property
    def goal(self) -> tuple[float, float]:
        """Where the search is centred: the destination when given (the walk is the cost that
        counts), else the driver's position. ``radius_m`` is measured from here. A driver still
        far away is sent where a free space is likeliest on arrival (``app.forecast``)."""
        if (far := forecast_service.goal_for_far_driver(self)) is not None:  # issue 17: far driver → forecast
            return far
        if self.dest_lat is not None and self.dest_lon is not None:
            return self.dest_lat, self.dest_lon
        return self.lat, self.lon


class Option(NamedTuple):
    """A place that may be held: a space, or a gate-counted facility (``space_id`` None).

    A named tuple, not a dataclass: every request builds a few dozen of them.
    """

    facility_id: str
    space_id: str | None
    lat: float
    lon: float
    distance_m: float
    accessible: bool = False
    ev: bool = False
    places: int = 1

    @property
    def key(self) -> str:
        return self.space_id if self.space_id else f"facility:{self.facility_id}"


@dataclass
class Batch:
    """Requests solved together, with their options (filled by :func:`plan`)."""

    requests: list[AssignmentRequest]
    excluded: list[set[str]]
    options: list[list[Option]] = field(default_factory=list)


def check_radius(radius_m: float | None, settings: Settings) -> float:
    """The search radius, defaulted and bounded by the settings."""
    radius = settings.default_radius_m if radius_m is None else radius_m
    if not 0 < radius <= settings.max_radius_m:
        raise InvalidInput(f"radius_m must be in (0, {settings.max_radius_m:g}]")
    return radius


# --- candidates and the batch decision ----------------------------------------------------


async def fetch_options(conn: AsyncConnection | AsyncSession, batch: Batch, *, settings: Settings,
                        eligibility: Eligibility, k: int | None = None,
                        counted: bool = True) -> list[list[Option]]:
    """Each request's ``k`` free, unheld, eligible spaces nearest its goal (and counted lots);
    ``k`` defaults to :func:`matching.candidate_depth` of the batch size."""
    reqs = batch.requests
    k = solve.candidate_depth(len(reqs)) if k is None else k
    params = {
        "lats": [r.goal[0] for r in reqs], "lons": [r.goal[1] for r in reqs],
        "acc": [r.accessible for r in reqs], "ev": [r.ev for r in reqs],
        "radius": [r.radius_m for r in reqs], "k": [k] * len(reqs),
        "exclude": sorted(set().union(*batch.excluded)), "stale": float(settings.stale_after_s),
        "closed": sorted(eligibility.closed), "blocked": sorted(eligibility.blocked_spaces),
    }
    out: list[list[Option]] = [[] for _ in reqs]
    for row in (await conn.execute(sql.CANDIDATES, params)).mappings():
        out[row["n"] - 1].append(Option(row["facility_id"], row["id"], row["lat"], row["lon"],
                                        row["distance_m"], row["accessible"], row["ev"]))
    if counted and eligibility.counted:
        for i, r in enumerate(reqs):
            out[i] += await _counted(conn, r, params, batch.excluded[i])
    return out


def index_options(index: FreeIndex, batch: Batch, *, k: int | None = None) -> list[list[Option]]:
    """Each request's ``k`` free, unheld, eligible spaces nearest its goal, from the process's
    index (``k`` as in :func:`fetch_options`).

    Same rules as ``CANDIDATES`` (the index follows the database within a poll interval); the
    hold itself is still decided by PostgreSQL, which rejects a space taken meanwhile.
    """
    out: list[list[Option]] = []
    k = solve.candidate_depth(len(batch.requests)) if k is None else k
    rows = index.rows  # (facility, id, lat, lon, accessible, ev) per position
    for r, excluded in zip(batch.requests, batch.excluded, strict=True):
        found = index.search(*r.goal, limit=k, radius_m=r.radius_m, accessible=r.accessible, ev=r.ev,
                             exclude=excluded)
        options = []
        for i, d in found:
            facility, space, lat, lon, accessible, ev = rows[i]
            options.append(Option(facility, space, lat, lon, d, accessible, ev))
        out.append(options)
    return out


async def counted_options(conn: AsyncConnection | AsyncSession, batch: Batch, *, settings: Settings,
                          eligibility: Eligibility) -> list[list[Option]]:
    """Each request's nearby gate-counted lots with places left (none when no such lot is open)."""
    if not eligibility.counted:
        return [[] for _ in batch.requests]
    params = {"closed": sorted(eligibility.closed), "stale": float(settings.stale_after_s)}
    return [await _counted(conn, r, params, excluded) for r, excluded in zip(batch.requests, batch.excluded,
                                                                              strict=True)]


async def _counted(conn: AsyncConnection | AsyncSession, r: AssignmentRequest, params: dict[str, Any],
                   excluded: set[str]) -> list[Option]:
    if r.accessible or r.ev:  # a count says nothing about which kind of place is free
        return []
    rows = await conn.execute(sql.COUNTED, {
        "lat": r.goal[0], "lon": r.goal[1], "radius": r.radius_m, "k": 5,
        "closed": params["closed"], "stale": params["stale"]})
    options = [Option(row["id"], None, row["lat"], row["lon"], row["distance_m"], places=row["places"])
               for row in rows.mappings()]
    return [o for o in options if o.key not in excluded]


async def free_spaces_sql(conn: AsyncConnection | AsyncSession, request: AssignmentRequest, *, limit: int,
                          settings: Settings, eligibility: Eligibility) -> list[dict[str, Any]]:
    """``GET /v1/spaces/free`` straight from PostGIS (the in-memory index answers the same)."""
    batch = Batch([request], [set()])
    options = (await fetch_options(conn, batch, settings=settings, eligibility=eligibility, k=limit,
                                   counted=False))[0]
    return [{"space_id": o.space_id, "facility_id": o.facility_id, "lat": o.lat, "lon": o.lon,
             "distance_m": round(o.distance_m, 1)} for o in options]


def _free_params(settings: Settings, eligibility: Eligibility, *, accessible: bool, ev: bool,
                 k: int) -> dict[str, Any]:
    return {"acc": accessible, "ev": ev, "k": k, "stale": float(settings.stale_after_s),
            "closed": sorted(eligibility.closed), "blocked": sorted(eligibility.blocked_spaces)}


async def free_page_sql(conn: AsyncConnection | AsyncSession, request: AssignmentRequest, *, limit: int,
                        after: Any, settings: Settings, eligibility: Eligibility) -> tuple[list[dict[str, Any]], Any]:
    """A page of ``GET /v1/spaces/free`` from PostGIS after the cursor ``after`` (dot, id, metres),
    with the next page's cursor (None on the last page)."""
    params = {**_free_params(settings, eligibility, accessible=request.accessible, ev=request.ev, k=limit + 1),
              "lat": request.lat, "lon": request.lon, "radius": request.radius_m,
              "after_m": None if after is None else after[2], "after_id": None if after is None else after[1]}
    rows = [dict(r) for r in (await conn.execute(sql.FREE_PAGE, params)).mappings()]
    page = [{**r, "distance_m": round(r["distance_m"], 1)} for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, None if last is None else (None, last["space_id"], last["distance_m"])


async def free_in_bbox_sql(conn: AsyncConnection | AsyncSession, bbox: tuple[float, float, float, float], *,
                           limit: int, accessible: bool, ev: bool, after_id: str | None, settings: Settings,
                           eligibility: Eligibility) -> tuple[list[dict[str, Any]], bool]:
    """Free spaces in ``bbox`` from PostGIS, by id after ``after_id``; and whether more follow."""
    params = {**_free_params(settings, eligibility, accessible=accessible, ev=ev, k=limit + 1),
              **dict(zip(("minx", "miny", "maxx", "maxy"), bbox, strict=True)), "after_id": after_id}
    rows = [dict(r) for r in (await conn.execute(sql.FREE_IN_BBOX, params)).mappings()]
    return rows[:limit], len(rows) > limit


def plan(batch: Batch, options: list[list[Option]], *, eligibility: Eligibility,
         now: datetime) -> list[list[Option]]:
    """Solve the batch exactly; each request's options: its pick, then its others by cost.

    The others exclude what the batch gave to someone else and what the request cannot use.
    """
    if not batch.requests:
        return []
    origin = (batch.requests[0].lat, batch.requests[0].lon)
    drivers = [to_driver(str(i), r, origin) for i, r in enumerate(batch.requests)]
    if len(drivers) == 1:
        return [_rank_one(drivers[0], options[0], origin, eligibility, now)]
    spaces = [to_spaces(opts, origin, eligibility, now) for opts in options]
    problem = solve.build_problem(drivers, spaces, MODEL)
    picks = solve.optimal_picks(problem)
    taken = {int(problem.cols[k]) for k in picks.values()}
    by_key = {o.key: o for opts in options for o in opts}
    out: list[list[Option]] = [[] for _ in drivers]
    for k in np.lexsort((problem.costs, problem.rows)):  # per driver, cheapest first
        i, j = int(problem.rows[k]), int(problem.cols[k])
        if j not in taken:
            out[i].append(by_key[problem.spaces[j].id])
    for i, k in picks.items():
        out[i].insert(0, by_key[problem.spaces[problem.cols[k]].id])
    return out


def _rank_one(driver: matching.Driver, options: list[Option], origin: tuple[float, float], el: Eligibility,
              now: datetime) -> list[Option]:
    """One driver alone: the optimum is its cheapest candidate, so its options by cost suffice.
    Priced as columns (:func:`matching.cost.space_columns`): no ``Space`` objects per request."""
    if not options:
        return []
    xs, ys = project([o.lat for o in options], [o.lon for o in options], origin)
    columns = space_columns(xs, ys, [o.accessible for o in options], [o.ev for o in options],
                            _available(options, el, now), _limits(options, el))
    costs = MODEL.pair_costs(driver_columns([driver]), columns)
    order = np.argsort(costs, kind="stable")
    return [options[j] for j in order[np.isfinite(costs[order])].tolist()]


def _available(options: Sequence[Option], el: Eligibility, now: datetime) -> list[float]:
    """Minutes each option stays usable (inf: all day)."""
    if not el.closes_at:
        return [math.inf] * len(options)
    minutes = {f: el.available_minutes(f, now) for f in {o.facility_id for o in options}}
    return [math.inf if (m := minutes[o.facility_id]) is None else m for o in options]


def _limits(options: Sequence[Option], el: Eligibility) -> list[float]:
    """The time limit in force at each option, minutes (inf: none)."""
    if not el.limit_min:
        return [math.inf] * len(options)
    limits = (el.max_stay(o.facility_id, o.space_id) for o in options)
    return [math.inf if m is None else float(m) for m in limits]


def to_driver(did: str, r: AssignmentRequest, origin: tuple[float, float]) -> matching.Driver:
    """The engine's view of a request, in metres around ``origin``."""
    x, y = project(r.lat, r.lon, origin)
    dest_x = dest_y = None
    if r.dest_lat is not None and r.dest_lon is not None:
        dx, dy = project(r.dest_lat, r.dest_lon, origin)
        dest_x, dest_y = float(dx), float(dy)
    return matching.Driver(did, float(x), float(y), dest_x, dest_y, r.accessible, r.ev, r.stay_minutes)


def to_spaces(options: Sequence[Option], origin: tuple[float, float], el: Eligibility,
              now: datetime) -> list[matching.Space]:
    """:func:`to_space` of many options, projected at once."""
    xs, ys = project([o.lat for o in options], [o.lon for o in options], origin)
    rows = zip(options, xs.tolist(), ys.tolist(), _available(options, el, now), _limits(options, el), strict=True)
    return [matching.Space(o.key, x, y, o.accessible, o.ev, available, limit, o.places)
            for o, x, y, available, limit in rows]


def to_space(o: Option, origin: tuple[float, float], el: Eligibility, now: datetime) -> matching.Space:
    """The engine's view of an option (closing time and time limit included)."""
    return to_spaces([o], origin, el, now)[0]


# --- holds ----------------------------------------------------------------------------------


async def place_hold(session: AsyncSession, *, principal: Principal, request: AssignmentRequest,
                     options: Sequence[Option], settings: Settings) -> dict[str, Any] | None:
    """Hold the first option still free (the database arbitrates between processes)."""
    for option in options:
        params = _hold_params(principal, request, option, settings)
        if option.space_id is None:
            await session.execute(sql.LOCK_FACILITY, {"facility_id": option.facility_id})
            row = (await session.execute(sql.INSERT_FACILITY_HOLD, params)).first()
        else:
            row = (await session.execute(sql.INSERT_SPACE_HOLD, params)).first()
        if row is not None:
            return _created(row, option, request)
    return None


def _hold_params(principal: Principal, r: AssignmentRequest, o: Option, settings: Settings) -> dict[str, Any]:
    prefs = {"accessible": r.accessible, "ev": r.ev, "radius_m": r.radius_m, "stay_minutes": r.stay_minutes}
    return {"id": uuid.uuid4(), "key_id": principal.key_id, "space_id": o.space_id,
            "facility_id": o.facility_id, "hold_s": float(settings.hold_seconds), "lat": r.lat,
            "stale": float(settings.stale_after_s),
            "lon": r.lon, "dest_lat": r.dest_lat, "dest_lon": r.dest_lon,
            "preferences": orjson.dumps(prefs).decode()}


def _created(row: Any, o: Option, r: AssignmentRequest) -> dict[str, Any]:
    return created(row.id, row.expires_at, o, r.lat, r.lon)


def created(assignment_id: uuid.UUID, expires_at: datetime, o: Option, lat: float, lon: float) -> dict[str, Any]:
    """The ``201`` body of a hold on ``o`` for a driver at ``lat, lon`` (``distance_m`` from the
    driver, as ``GET /v1/assignments/{id}`` reports it)."""
    return {"id": str(assignment_id), "space_id": o.space_id, "facility_id": o.facility_id,
            "lat": o.lat, "lon": o.lon, "distance_m": round(haversine_m(lat, lon, o.lat, o.lon), 1),
            "status": "held", "expires_at": expires_at}


def hold_row(principal: Principal, r: AssignmentRequest) -> tuple[Any, ...]:
    """A request's columns for ``INSERT_SPACE_HOLDS`` (id, key, lat, lon, dest, preferences)."""
    prefs = {"accessible": r.accessible, "ev": r.ev, "radius_m": r.radius_m, "stay_minutes": r.stay_minutes}
    return (uuid.uuid4(), principal.key_id, r.lat, r.lon, r.dest_lat, r.dest_lon, orjson.dumps(prefs).decode())


def no_free_space(request: AssignmentRequest) -> NoFreeSpace:
    where = "the destination" if request.dest_lat is not None else "the driver"
    return NoFreeSpace(f"no free space fits within {request.radius_m:g} m of {where}")


# --- reading and changing an assignment ------------------------------------------------------


async def load(conn: AsyncConnection | AsyncSession, assignment_id: uuid.UUID) -> Any:
    """The assignment row with its target's position and sensor state, or None."""
    return (await conn.execute(sql.GET_ASSIGNMENT, {"id": assignment_id})).mappings().first()


async def owned(session: AsyncSession, principal: Principal, assignment_id: uuid.UUID) -> Any:
    """The caller's assignment; 404 for a missing one and for another driver's."""
    row = await load(session, assignment_id)
    if row is None or (principal.role != "admin" and row["key_id"] != principal.key_id):
        raise NotFound(f"no assignment {assignment_id}")
    return row


def view(row: Any) -> dict[str, Any]:
    """The public JSON of an assignment (an active hold past its end reads ``expired``)."""
    status = row["status"]
    if status in sql.ACTIVE_STATUSES and row["hold_until"] <= row["now"]:
        status = "expired"
    out = {"id": str(row["id"]), "status": status, "space_id": row["space_id"],
           "facility_id": row["facility_id"], "lat": row["target_lat"], "lon": row["target_lon"],
           "distance_m": round(haversine_m(row["lat"], row["lon"], row["target_lat"], row["target_lon"]), 1),
           "expires_at": row["expires_at"], "updated_at": row["updated_at"],
           "previous_space_ids": list(row["previous_space_ids"] or []), "reason": row["reason"]}
    return out


async def set_status(session: AsyncSession | AsyncConnection, assignment_id: uuid.UUID, status: str) -> bool:
    """Move an active assignment to ``status`` (a terminal one ends the hold now)."""
    return (await session.execute(sql.SET_STATUS, {"id": assignment_id, "status": status})).first() is not None


async def set_lost(session: AsyncSession | AsyncConnection, assignment_id: uuid.UUID, reason: str) -> bool:
    """End an active assignment as ``lost`` (its space taken, nothing else fits) with ``reason``."""
    return (await session.execute(sql.SET_LOST, {"id": assignment_id, "reason": reason})).first() is not None


async def expire_if_due(session: AsyncSession, row: Any) -> Any:
    """Record ``expired`` for an active hold past its end; returns the fresh row."""
    if row["status"] in sql.ACTIVE_STATUSES and row["hold_until"] <= row["now"]:
        await session.execute(text("UPDATE assignments SET status = 'expired', updated_at = now() "
                                   "WHERE id = :id AND status IN ('held', 'reassigned')"), {"id": row["id"]})
        return await load(session, row["id"])
    return row


async def set_position(session: AsyncSession, assignment_id: uuid.UUID, lat: float, lon: float) -> None:
    """Remember the driver's latest position (what arrival is judged by)."""
    await session.execute(sql.SET_POSITION, {"id": assignment_id, "lat": lat, "lon": lon})


def within_arrival(row: Any, lat: float, lon: float, settings: Settings) -> bool:
    """Whether a position is close enough to the target to count as the driver arriving."""
    return haversine_m(lat, lon, row["target_lat"], row["target_lon"]) <= settings.arrival_radius_m
