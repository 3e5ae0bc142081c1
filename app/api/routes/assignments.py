"""Driver assignments: request a held space, follow it, report position, cancel.

A driver key sees only its own assignments (404 for others'). ``POST`` is a hot route
(``app.api.hot``): one handler, described by :class:`AssignmentIn` and :func:`create_assignment`.
``GET …/events`` is a Server-Sent Events stream: one event with the current state, then one per
change (a re-assignment, arrival, expiry, cancellation, or ``lost`` with its ``reason``) until the assignment ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api import hot
from app.api.deps import SessionDep, SettingsDep, principal_of, require_roles
from app.api.openapi import ERROR_RESPONSES
from app.assignments import lifecycle, service
from app.assignments.hold_cap import admitted as within_hold_cap
from app.assignments.runtime import MatchingRuntime
from app.keys.service import Principal

router = APIRouter(prefix="/v1/assignments", tags=["matching"])
DriverKey = Annotated[Principal, Depends(require_roles("driver"))]
Status = Literal["held", "reassigned", "arrived", "expired", "cancelled", "lost"]
KEEPALIVE_S = 15.0


class AssignmentIn(BaseModel):
    model_config = ConfigDict(strict=True)  # numbers and booleans, not strings that look like them

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="driver position, WGS84")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    dest_lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False,
                                   description="destination: spaces are sought around it and priced by the walk")
    dest_lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    accessible: bool = False
    ev: bool = False
    radius_m: float | None = Field(None, gt=0, allow_inf_nan=False, description=(
        "search radius around the destination (around the driver without one); default and maximum from settings"))
    stay_minutes: float | None = Field(None, gt=0, le=10080, allow_inf_nan=False, description="intended stay")
    eta_min: float | None = Field(None, ge=0, le=240, allow_inf_nan=False, description=(
        "minutes until arrival: a far driver is sent where a free space is likeliest then (forecast)"))

    @model_validator(mode="after")
    def _destination_whole(self) -> AssignmentIn:
        if (self.dest_lat is None) != (self.dest_lon is None):
            raise ValueError("give both dest_lat and dest_lon, or neither")
        return self


class PositionIn(BaseModel):
    model_config = ConfigDict(strict=True)  # numbers, not strings that look like them

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class AssignmentCreated(BaseModel):
    id: uuid.UUID
    space_id: str | None = Field(description="null for a place held in a gate-counted lot")
    facility_id: str
    lat: float
    lon: float
    distance_m: float = Field(description="metres from the driver's position to the held place")
    status: Status
    expires_at: datetime


class AssignmentOut(AssignmentCreated):
    updated_at: datetime
    previous_space_ids: list[str] = Field(description="spaces lost to someone else, oldest first")
    reason: Literal["no_free_space"] | None = Field(None, description=(
        "why the assignment is `lost`: its space was taken by someone else and nothing else fits "
        "around the driver's goal (`no_free_space`); null otherwise"))


NO_SPACE: dict[int | str, dict[str, Any]] = {
    409: {"description": "`no_free_space`: nothing fits within the radius; `hold_limit`: the key has its "
               "maximum of active holds (CITYPARK_MAX_HOLDS_PER_DRIVER, or the key's own)"}}


async def answer_create_assignment(request: Request) -> Response:
    """The one handler of ``POST /v1/assignments`` (a hot route, ``app.api.hot``)."""
    principal = await principal_of(request, "driver")
    body = await hot.json_body(request, AssignmentIn)
    settings = request.app.state.settings
    query = service.AssignmentRequest(
        body.lat, body.lon, body.dest_lat, body.dest_lon, body.accessible, body.ev,
        service.check_radius(body.radius_m, settings), body.stay_minutes, eta_min=body.eta_min)
    runtime: MatchingRuntime = request.app.state.matching
    async with within_hold_cap(runtime, None, principal):  # issue 18: cap on a driver key's active holds
        created = await runtime.assign(principal, query)
    return Response(orjson.dumps(created, option=orjson.OPT_UTC_Z), status_code=201,  # times as GET writes them
                    media_type="application/json")


async def create_assignment(body: AssignmentIn, principal: DriverKey) -> AssignmentCreated:
    """OpenAPI description only: requests are answered by :func:`answer_create_assignment`."""
    raise NotImplementedError


router.add_api_route(
    "", create_assignment, methods=["POST"], route_class_override=hot.hot_route(answer_create_assignment),
    status_code=201, response_model=AssignmentCreated, summary="Hold the best free space",
    responses={**ERROR_RESPONSES, **NO_SPACE,
               415: {"description": "`unsupported_media_type`: the body must be application/json"}},
)


@router.get("/{assignment_id}", response_model=AssignmentOut, summary="An assignment's current state",
            responses={**ERROR_RESPONSES})
async def get_assignment(assignment_id: uuid.UUID, session: SessionDep, principal: DriverKey) -> dict[str, Any]:
    return service.view(await lifecycle.current(session, principal, assignment_id))


ENDED: dict[int | str, dict[str, Any]] = {
    409: {"description": "`assignment_ended`: the assignment has already ended"}}


@router.post("/{assignment_id}/cancel", response_model=AssignmentOut, summary="Release the hold",
             responses={**ERROR_RESPONSES, **ENDED})
async def cancel_assignment(assignment_id: uuid.UUID, session: SessionDep, principal: DriverKey) -> dict[str, Any]:
    return await lifecycle.cancel(session, principal, assignment_id)


@router.post("/{assignment_id}/position", response_model=AssignmentOut, summary="Report the driver's position",
             responses={**ERROR_RESPONSES, **ENDED})
async def report_position(assignment_id: uuid.UUID, body: PositionIn, request: Request, session: SessionDep,
                          settings: SettingsDep, principal: DriverKey) -> dict[str, Any]:
    runtime: MatchingRuntime = request.app.state.matching
    return await lifecycle.report_position(
        session, principal, assignment_id, lat=body.lat, lon=body.lon, settings=settings,
        eligibility=await runtime.eligibility.get(session))


@router.get("/{assignment_id}/events", summary="Server-Sent Events of the assignment's state",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                       **ERROR_RESPONSES})
async def assignment_events(assignment_id: uuid.UUID, request: Request, session: SessionDep,
                            principal: DriverKey) -> StreamingResponse:
    await service.owned(session, principal, assignment_id)
    runtime: MatchingRuntime = request.app.state.matching
    return StreamingResponse(_stream(runtime, assignment_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(runtime: MatchingRuntime, assignment_id: uuid.UUID) -> AsyncIterator[bytes]:
    with runtime.hub.subscribe(assignment_id) as wake:
        last: tuple[Any, ...] | None = None
        while True:
            async with runtime.sessions() as session:
                row = await service.load(session, assignment_id)
            state = service.view(row)
            key = (state["status"], state["space_id"], state["facility_id"])
            if key != last:
                last = key
                data = orjson.dumps(state, option=orjson.OPT_UTC_Z)  # times as GET writes them
                yield b"event: " + state["status"].encode() + b"\ndata: " + data + b"\n\n"
            if state["status"] in service.TERMINAL:
                return
            wait = min(KEEPALIVE_S, max((row["hold_until"] - row["now"]).total_seconds(), 0.0) + 0.05)
            try:
                await asyncio.wait_for(wake.get(), timeout=wait)
            except TimeoutError:
                yield b": keep-alive\n\n"
