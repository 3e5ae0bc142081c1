"""Driver assignments: request a held space, follow it, report position, cancel.

A driver key sees only its own assignments (404 for others'). The plain ``POST`` of a key this
process already knows is answered by :class:`CreateFastPath` in front of the router, with the
same :func:`assign`. ``GET …/events`` is a
Server-Sent Events stream: one event with the current state, then one per change (a
re-assignment, arrival, expiry or cancellation) until the assignment ends.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import errors as api_errors
from app.api.deps import SessionDep, SettingsDep, require_roles
from app.api.openapi import ERROR_RESPONSES
from app.assignments import reassign as matching_reassign
from app.assignments import runtime as matching_runtime
from app.assignments import service
from app.assignments.hold_cap import admitted as within_hold_cap
from app.core.errors import Conflict, DomainError
from app.keys import service as keys_service
from app.keys.service import Principal

router = APIRouter(prefix="/v1/assignments", tags=["matching"])
DriverKey = Annotated[Principal, Depends(require_roles("driver"))]
Status = Literal["held", "reassigned", "arrived", "expired", "cancelled"]
KEEPALIVE_S = 15.0


class AssignmentIn(BaseModel):
    lat: float = Field(ge=-90, le=90, description="driver position, WGS84")
    lon: float = Field(ge=-180, le=180)
    dest_lat: float | None = Field(None, ge=-90, le=90,
                                   description="destination: spaces are sought around it and priced by the walk")
    dest_lon: float | None = Field(None, ge=-180, le=180)
    accessible: bool = False
    ev: bool = False
    radius_m: float | None = Field(None, gt=0, description="search radius around the destination (around the "
                                   "driver without one); default and maximum from settings")
    stay_minutes: float | None = Field(None, gt=0, le=10080, description="intended stay")

    @model_validator(mode="after")
    def _destination_whole(self) -> AssignmentIn:
        if (self.dest_lat is None) != (self.dest_lon is None):
            raise ValueError("give both dest_lat and dest_lon, or neither")
        return self


class PositionIn(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


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


NO_SPACE: dict[int | str, dict[str, Any]] = {
    409: {"description": "`no_free_space`: nothing fits within the radius; `hold_limit`: the key has its "
               "maximum of active holds (CITYPARK_MAX_HOLDS_PER_DRIVER, or the key's own)"}}


@router.post("", status_code=201, response_model=AssignmentCreated, summary="Hold the best free space",
             responses={**ERROR_RESPONSES, **NO_SPACE})
async def create_assignment(body: AssignmentIn, request: Request, session: SessionDep,
                            settings: SettingsDep, principal: DriverKey) -> dict[str, Any]:
    query = service.AssignmentRequest(
        body.lat, body.lon, body.dest_lat, body.dest_lon, body.accessible, body.ev,
        service.check_radius(body.radius_m, settings), body.stay_minutes)
    return await assign(request.app.state.matching, session, principal, query)


async def assign(runtime: matching_runtime.MatchingRuntime, session: AsyncSession | None, principal: Principal,
                 query: service.AssignmentRequest) -> dict[str, Any]:
    """Options from the batch, then the first hold the database admits; ``NoFreeSpace`` if none.

    Without ``session`` the runtime opens a connection or transaction only if it needs one.
    """
    excluded: set[str] = set()
    async with within_hold_cap(runtime, session, principal):  # issue 18: cap on a driver key's active holds
        for _ in range(3):  # options lost to other processes meanwhile: ask again without them
            options = await runtime.batcher.propose(query, excluded, session)
            if not options:
                break
            created = await runtime.hold(session, principal=principal, request=query, options=options)
            if created is not None:
                return created
            excluded |= {o.key for o in options}
    raise service.no_free_space(query)


class CreateFastPath:
    """``POST /v1/assignments`` in front of the router, for the plain request of a known key.

    FastAPI's dependency, validation and serialisation machinery costs several times the
    assignment itself. A JSON body this module's ``AssignmentIn`` would accept unchanged, with a
    driver (or admin) key this process authenticated within ``keys.KEY_CACHE_TTL_S``, is
    answered here by the same :func:`assign`; anything else (an unknown key, odd or invalid
    input) is replayed to the route, which validates, authenticates and answers as specified.
    """

    def __init__(self, app: ASGIApp, *, owner: FastAPI) -> None:
        self.app, self.owner = app, owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/assignments":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        answer = await self.answer(scope, body)
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
            return
        status, payload = answer
        data = orjson.dumps(payload, option=orjson.OPT_UTC_Z)  # as the route's response model writes times
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def answer(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]] | None:
        state = self.owner.state
        runtime: matching_runtime.MatchingRuntime | None = getattr(state, "matching", None)
        principal = _principal(scope)
        query = _plain_query(body, state.settings)
        if runtime is None or not runtime.ready or principal is None or query is None:
            return None
        try:  # no session: space holds go through the runtime's writer, which commits them
            created = await assign(runtime, None, principal, query)
        except DomainError as exc:
            return api_errors.status_for(exc), {"error": exc.kind, "detail": exc.detail}
        return 201, created


def _principal(scope: Scope) -> Principal | None:
    """A driver or admin key this process knows; None leaves authentication to the route."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            principal = keys_service.cached_principal(key.strip()) if scheme.lower() == "bearer" else None
            return principal if principal is not None and principal.role in ("driver", "admin") else None
    return None


_FIELDS = {"lat", "lon", "dest_lat", "dest_lon", "accessible", "ev", "radius_m", "stay_minutes"}


def _plain_query(body: bytes, settings: Any) -> service.AssignmentRequest | None:
    """The request if ``AssignmentIn`` would accept ``body`` as it is, else None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data.keys() <= _FIELDS:
        return None
    lat, lon = _num(data.get("lat"), -90, 90), _num(data.get("lon"), -180, 180)
    dest_lat, dest_lon = _num(data.get("dest_lat"), -90, 90), _num(data.get("dest_lon"), -180, 180)
    radius, stay = _num(data.get("radius_m"), 0, settings.max_radius_m), _num(data.get("stay_minutes"), 0, 10080)
    flags = [data.get(k, False) for k in ("accessible", "ev")]
    if lat is None or lon is None or (dest_lat is None) != (dest_lon is None) or radius == 0 or stay == 0:
        return None
    if any(data.get(k) is not None and v is None for k, v in
           (("dest_lat", dest_lat), ("dest_lon", dest_lon), ("radius_m", radius), ("stay_minutes", stay))):
        return None
    if not all(isinstance(f, bool) for f in flags):
        return None
    return service.AssignmentRequest(lat, lon, dest_lat, dest_lon, flags[0], flags[1],
                                     service.check_radius(radius, settings), stay)


def _num(value: Any, lo: float, hi: float) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and lo <= value <= hi else None


async def _read_body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@router.get("/{assignment_id}", response_model=AssignmentOut, summary="An assignment's current state",
            responses={**ERROR_RESPONSES})
async def get_assignment(assignment_id: uuid.UUID, session: SessionDep, principal: DriverKey) -> dict[str, Any]:
    row = await service.owned(session, principal, assignment_id)
    return service.view(await service.expire_if_due(session, row))


@router.post("/{assignment_id}/cancel", response_model=AssignmentOut, summary="Release the hold",
             responses={**ERROR_RESPONSES, 409: {"description": "the assignment has already ended"}})
async def cancel_assignment(assignment_id: uuid.UUID, session: SessionDep, principal: DriverKey) -> dict[str, Any]:
    row = await service.expire_if_due(session, await service.owned(session, principal, assignment_id))
    if not await service.set_status(session, assignment_id, "cancelled"):
        raise Conflict(f"assignment is already {row['status']}", kind="assignment_ended")
    return service.view(await service.load(session, assignment_id))


@router.post("/{assignment_id}/position", response_model=AssignmentOut, summary="Report the driver's position",
             responses={**ERROR_RESPONSES})
async def report_position(assignment_id: uuid.UUID, body: PositionIn, request: Request, session: SessionDep,
                          settings: SettingsDep, principal: DriverKey) -> dict[str, Any]:
    row = await service.expire_if_due(session, await service.owned(session, principal, assignment_id))
    if row["status"] in service.TERMINAL:
        return service.view(row)
    await service.set_position(session, assignment_id, body.lat, body.lon)
    near = service.within_arrival(row, body.lat, body.lon, settings)
    if near and (row["space_id"] is None or row["target_occupied"]):
        await service.set_status(session, assignment_id, "arrived")
    elif row["target_occupied"]:  # taken by someone else: re-assign now, in this transaction
        runtime: matching_runtime.MatchingRuntime = request.app.state.matching
        await matching_reassign.handle_lost_holds(
            session, settings=settings, eligibility=await runtime.eligibility.get(session),
            space_ids=[row["space_id"]])
    return service.view(await service.load(session, assignment_id))


@router.get("/{assignment_id}/events", summary="Server-Sent Events of the assignment's state",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                       **ERROR_RESPONSES})
async def assignment_events(assignment_id: uuid.UUID, request: Request, session: SessionDep,
                            principal: DriverKey) -> StreamingResponse:
    await service.owned(session, principal, assignment_id)
    runtime: matching_runtime.MatchingRuntime = request.app.state.matching
    return StreamingResponse(_stream(runtime, assignment_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(runtime: matching_runtime.MatchingRuntime, assignment_id: uuid.UUID) -> AsyncIterator[bytes]:
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
