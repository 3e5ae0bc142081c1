"""Operator endpoints: occupancy and gate-count pushes, inventory upload.

Pushes take the MQTT payload as the body and go through the ingest's own validation and
batch writer (``app/occupancy/service.py``), so HTTP and MQTT keep the same rules. A push
that the validation rejects is stored in ``rejected_messages`` (source ``http``) and answered
with its 4xx: ``404`` unknown sensor/facility, ``403`` another operator's, ``422`` otherwise.
The body is read raw (not parsed by FastAPI) so that a malformed one is recorded too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import SessionDep, SettingsDep, require_operator_of, require_roles
from app.api.errors import error_response, status_for
from app.api.geojson import FEATURE_COLLECTION_SCHEMA
from app.core.errors import DomainError, Forbidden
from app.inventory import service as inventory_service
from app.keys.service import Principal
from app.occupancy import service as occupancy_service
from app.passages import service as passages_service

router = APIRouter(prefix="/v1/operators/{operator_id}", tags=["operators"])

OperatorKey = Annotated[Principal, Depends(require_roles("operator"))]
Id = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class OccupancyIn(BaseModel):
    """The MQTT occupancy payload (CONTRACT.md)."""

    occupied: bool
    observed_at: datetime = Field(description="RFC 3339 with an offset")
    seq: int | None = Field(default=None, ge=0, description="increasing per sensor")
    battery_v: float | None = None


class CountIn(BaseModel):
    """The MQTT gate-count payload (CONTRACT.md)."""

    free: int = Field(ge=0)
    observed_at: datetime = Field(description="RFC 3339 with an offset")
    total: int | None = Field(default=None, ge=0)


class PushAccepted(BaseModel):
    accepted: Literal[True] = True
    kind: Literal["occupancy", "count"]
    id: str = Field(description="the sensor or facility id")
    observed_at: datetime


class InventoryResult(BaseModel):
    operator_id: str
    facilities: int
    spaces: int
    sensors: int
    rules: int
    warnings: list[str] = Field(default_factory=list, description="what was changed on the way in, "
                                "e.g. z (height) coordinates dropped")


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


@router.post(
    "/sensors/{sensor_id}/occupancy", status_code=202, response_model=PushAccepted,
    summary="Push a sensor's occupancy (same body and rules as MQTT)", openapi_extra=_body_doc(OccupancyIn),
)
async def push_occupancy(
    operator_id: Id, sensor_id: Id, request: Request, principal: OperatorKey,
    session: SessionDep, settings: SettingsDep,
) -> Any:
    require_operator_of(operator_id, principal)
    return await _push(
        request, session, settings, "occupancy", sensor_id, f"{operator_id}/sensors/{sensor_id}/occupancy",
        lambda body: occupancy_service.push_occupancy(
            session, settings=settings, operator_id=operator_id, sensor_id=sensor_id, body=body))


@router.post(
    "/facilities/{facility_id}/count", status_code=202, response_model=PushAccepted,
    summary="Push a gate-counted facility's free count (same body and rules as MQTT)",
    openapi_extra=_body_doc(CountIn),
)
async def push_count(
    operator_id: Id, facility_id: Id, request: Request, principal: OperatorKey,
    session: SessionDep, settings: SettingsDep,
) -> Any:
    require_operator_of(operator_id, principal)
    return await _push(
        request, session, settings, "count", facility_id, f"{operator_id}/facilities/{facility_id}/count",
        lambda body: _count_then_recount(session, settings, operator_id, facility_id, body))


async def _count_then_recount(session: Any, settings: Any, operator_id: str, facility_id: str, body: bytes) -> Any:
    event = await occupancy_service.push_count(
        session, settings=settings, operator_id=operator_id, facility_id=facility_id, body=body)
    # a lot that also reports passages: its free count is this count + the passages since (app/passages)
    await passages_service.recount(await occupancy_service.driver_connection(session), [facility_id])
    return event


async def _push(
    request: Request, session: Any, settings: Any, kind: Literal["occupancy", "count"], target_id: str,
    topic_tail: str, write: Callable[[bytes], Awaitable[Any]],
) -> Any:
    """Run one push through the shared write path; a rejection is stored and answered 4xx."""
    body = await request.body()
    try:
        event = await write(body)
    except DomainError as exc:
        return await _rejected(session, settings, topic_tail, body, exc)
    request.app.state.facility_cache.invalidate()  # this process's snapshot is out of date
    return PushAccepted(kind=kind, id=target_id, observed_at=event.observed_at)


async def _rejected(session: Any, settings: Any, topic_tail: str, body: bytes, exc: DomainError) -> JSONResponse:
    """Store the rejection (committed with the request) and answer with its 4xx."""
    reason = "wrong_operator" if isinstance(exc, Forbidden) else exc.kind
    await occupancy_service.record_rejection(session, occupancy_service.Rejection(
        topic=f"{settings.mqtt_topic_root}/{topic_tail}", payload=body,
        reason=f"{reason}: {exc.detail}", source="http"))
    return error_response(status_for(exc), exc.kind, exc.detail)


@router.put(
    "/inventory", response_model=InventoryResult,
    summary="Upsert facilities, spaces and sensors from a GeoJSON FeatureCollection (all or nothing)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/geo+json": {"schema": FEATURE_COLLECTION_SCHEMA},
        "application/json": {"schema": FEATURE_COLLECTION_SCHEMA}}}},
)
async def put_inventory(
    operator_id: Id, request: Request, principal: OperatorKey, session: SessionDep,
) -> InventoryResult:
    require_operator_of(operator_id, principal)
    # The body (at most CITYPARK_INVENTORY_MAX_BODY_BYTES) is streamed through the importer like a file.
    result = await inventory_service.import_inventory(
        session, operator_id=operator_id, doc=await request.body(),
        area=request.app.state.settings.service_area_bbox)
    request.app.state.facility_cache.invalidate()  # this process's snapshot is out of date
    return InventoryResult(**{**result.__dict__, "warnings": list(result.warnings)})

