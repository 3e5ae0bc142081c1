"""What a driver does with an assignment once it is held: follow it, report progress, cancel it.

Each function works in the caller's transaction and returns the assignment's view (the API's
``AssignmentOut``); one that has ended (``TERMINAL``) accepts no further change: cancelling it or
reporting a position on it is a ``Conflict`` of kind ``assignment_ended``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import service
from app.assignments.eligibility import Eligibility
from app.assignments.reassign import handle_lost_holds
from app.core.errors import Conflict
from app.core.settings import Settings
from app.keys.service import Principal


async def current(session: AsyncSession, principal: Principal, assignment_id: uuid.UUID) -> Any:
    """The driver's own assignment (404 otherwise), expired first if its hold has run out."""
    return await service.expire_if_due(session, await service.owned(session, principal, assignment_id))


def _ended(row: Any) -> Conflict:
    return Conflict(f"assignment is already {row['status']}", kind="assignment_ended")


async def cancel(session: AsyncSession, principal: Principal, assignment_id: uuid.UUID) -> dict[str, Any]:
    """Release the hold."""
    row = await current(session, principal, assignment_id)
    if not await service.set_status(session, assignment_id, "cancelled"):
        raise _ended(row)
    return service.view(await service.load(session, assignment_id))


async def report_position(session: AsyncSession, principal: Principal, assignment_id: uuid.UUID, *,
                          lat: float, lon: float, settings: Settings, eligibility: Eligibility) -> dict[str, Any]:
    """Record the driver's position: arrived when at the place (and it is taken, by them), re-assigned
    now when someone else has taken the held space."""
    row = await current(session, principal, assignment_id)
    if row["status"] in service.TERMINAL:
        raise _ended(row)
    await service.set_position(session, assignment_id, lat, lon)
    near = service.within_arrival(row, lat, lon, settings)
    if near and (row["space_id"] is None or row["target_occupied"]):
        await service.set_status(session, assignment_id, "arrived")
    elif row["target_occupied"]:  # taken by someone else: re-assign now, in this transaction
        await handle_lost_holds(session, settings=settings, eligibility=eligibility, space_ids=[row["space_id"]])
    return service.view(await service.load(session, assignment_id))
