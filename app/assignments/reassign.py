"""What happens when a held space is reported occupied: arrival, or re-assignment.

The driver's last known position (``POST …/position``, else where they asked from) within
``arrival_radius_m`` of the space means the car in it is theirs: the assignment is ``arrived``.
Otherwise someone else took it: the driver gets a new space by :func:`matching.reassign` over
their fresh candidates, together with up to ``NEARBY_HOLDERS`` other holders near the driver's
goal — who are moved only to a free space that costs them no more than theirs (monotone, with
no swaps, so each move is applied alone under the one-hold-per-space constraint).

The search is the original request again: around the destination, else around the point the
driver asked from (``origin_lat``/``origin_lon``, kept when the first position report moved
``lat``/``lon``), within the request's radius — never around where the driver happens to be
now. When nothing fits there, the assignment ends ``lost`` with ``reason`` ``no_free_space``
(``expired`` means only that a hold ran out).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import matching
from app.assignments import service, sql
from app.assignments.eligibility import Eligibility
from app.core.settings import Settings
from matching.geo import haversine_m

NEARBY_HOLDERS = 8
NEARBY_RADIUS_M = 300.0
NO_FREE_SPACE = "no_free_space"


async def handle_lost_holds(session: AsyncSession, *, settings: Settings, eligibility: Eligibility,
                            space_ids: list[str] | None = None) -> list[uuid.UUID]:
    """Settle every active hold whose space is now occupied; returns the assignments changed."""
    rows = (await session.execute(sql.LOST_HOLDS, {"space_ids": space_ids})).mappings().all()
    changed: list[uuid.UUID] = []
    for row in rows:
        if haversine_m(row["lat"], row["lon"], row["space_lat"], row["space_lon"]) <= settings.arrival_radius_m:
            await service.set_status(session, row["id"], "arrived")
            changed.append(row["id"])
        else:
            changed += await reassign_one(session, row, settings=settings, eligibility=eligibility)
    return changed


async def reassign_one(session: AsyncSession, row: Any, *, settings: Settings,
                       eligibility: Eligibility) -> list[uuid.UUID]:
    """Give the driver of ``row`` a new space (moving nearby holders only for the better)."""
    seeker = _request(row)
    holders = (await session.execute(sql.NEARBY_HOLDS, {
        "id": row["id"], "lat": seeker.goal[0], "lon": seeker.goal[1],
        "radius": NEARBY_RADIUS_M, "k": NEARBY_HOLDERS})).mappings().all()
    batch = service.Batch([seeker, *(_request(h) for h in holders)],
                          [{row["space_id"]}] + [set() for _ in holders])
    options = await service.fetch_options(session, batch, settings=settings, eligibility=eligibility)
    options = [[o for o in opts if o.space_id] for opts in options]  # no counted lots here
    decision = _decide(row, holders, options, eligibility)
    moved = [await _move(session, h, decision.get(str(h["id"]))) for h in holders]
    targets = [decision.get(str(row["id"]))] + options[0]
    for option in targets:
        if await _move(session, row, option):
            return [row["id"], *(h["id"] for h, ok in zip(holders, moved, strict=True) if ok)]
    await service.set_lost(session, row["id"], NO_FREE_SPACE)  # nothing left around the goal
    return [row["id"], *(h["id"] for h, ok in zip(holders, moved, strict=True) if ok)]


def _decide(row: Any, holders: Sequence[Any], options: list[list[service.Option]],
            el: Eligibility) -> dict[str, service.Option]:
    now = datetime.now(ZoneInfo("UTC"))
    origin = (row["lat"], row["lon"])
    by_key = {o.key: o for opts in options for o in opts}
    holds = []
    for h, opts in zip(holders, options[1:], strict=True):
        own = service.Option(h["facility_id"], h["space_id"], h["space_lat"], h["space_lon"], 0.0,
                             h["accessible"], h["ev"])
        by_key[own.key] = own
        holds.append(matching.Hold(service.to_driver(str(h["id"]), _request(h), origin),
                                   service.to_space(own, origin, el, now),
                                   tuple(service.to_spaces(opts, origin, el, now))))
    seeker = service.to_driver(str(row["id"]), _request(row), origin)
    cands = [service.to_spaces(options[0], origin, el, now)]
    result = matching.reassign(holds, [seeker], cands, swaps=False)
    return {did: by_key[sid] for did, sid in result.space_of.items() if sid is not None}


async def _move(session: AsyncSession, row: Any, option: service.Option | None) -> bool:
    """Move ``row``'s hold to ``option``'s space; False if unchanged or taken meanwhile."""
    if option is None or option.space_id == row["space_id"]:
        return False
    try:
        async with session.begin_nested():
            result = await session.execute(sql.MOVE_HOLD, {
                "id": row["id"], "space_id": option.space_id, "facility_id": option.facility_id,
                "old": row["space_id"]})
            return result.first() is not None
    except IntegrityError:  # another process holds it now
        return False


def _request(row: Any) -> service.AssignmentRequest:
    """The driver's original request: from where they asked (not their latest position)."""
    prefs = row["preferences"] or {}
    return service.AssignmentRequest(
        row["origin_lat"], row["origin_lon"], row["dest_lat"], row["dest_lon"], bool(prefs.get("accessible")),
        bool(prefs.get("ev")), float(prefs.get("radius_m") or 1000.0), prefs.get("stay_minutes"))
