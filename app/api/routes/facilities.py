"""Public availability: facilities near a point, one facility, its occupancy history.

The list endpoint answers from a per-process snapshot of every facility's availability,
refreshed at most every second (``app/api/facility_cache.py``, which also serves the hot
JSON query without FastAPI's per-request machinery).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api import facility_cache, geojson
from app.api.deps import SessionDep, SettingsDep
from app.api.openapi import ERROR_RESPONSES
from app.availability import fiware
from app.availability import service as availability_service
from app.availability.service import FacilityAvailability, Snapshot
from app.core import replica
from app.core.errors import InvalidInput

router = APIRouter(prefix="/v1/facilities", tags=["availability"])

MAX_RADIUS_M = facility_cache.MAX_RADIUS_M  # also capped by settings.max_radius_m
MAX_LIMIT = facility_cache.MAX_LIMIT
FacilityId = Annotated[str, Path(min_length=1, max_length=100, description="facility id")]
Kind = Literal["lot", "garage", "curb"]
Status = Literal["spacesAvailable", "almostFull", "full", "closed", "unknown"]


class FacilityOut(BaseModel):
    id: str
    name: str
    kind: Kind
    operator_id: str
    free: int | None = Field(description="free, unheld spaces; null when unknown (stale sensors)")
    total: int
    status: Status = Field(description="FIWARE OffStreetParking status vocabulary")
    observed_at: datetime | None
    distance_m: float | None = Field(description="to the entrance; null without lat/lon")
    lat: float = Field(description="entrance")
    lon: float = Field(description="entrance")
    counted: bool = Field(description="gate-counted instead of per-space sensors")
    open_now: bool
    unknown_spaces: int = Field(description="spaces without a fresh sensor reading")


class RuleOut(BaseModel):
    kind: Literal["time_limit", "no_parking"]
    max_stay_minutes: int | None
    days: str
    start: str = Field(serialization_alias="from")
    end: str = Field(serialization_alias="to")


class FacilityDetail(FacilityOut):
    opening_hours: str
    public_hours: str | None = Field(description="shared lot (停车资源共享): when open to the public")
    fee: str | None
    accessible_total: int
    accessible_free: int | None
    ev_total: int
    ev_free: int | None
    rules: list[RuleOut]
    geometry: dict[str, Any] = Field(description="RFC 7946 geometry of the facility")


class HistoryPoint(BaseModel):
    at: datetime
    free: int | None
    occupied: int | None
    total: int
    occupancy: float | None = Field(description="occupied share of the spaces with a known state")


class HistoryOut(BaseModel):
    facility_id: str
    since: datetime
    until: datetime
    step_s: int
    points: list[HistoryPoint]


LIST_CONTENT = {**geojson.geojson_content(), fiware.MEDIA_TYPE: {"schema": {
    "type": "array", "items": {"type": "object", "required": ["id", "type", "location"]}}}}


@router.get(
    "", response_model=list[FacilityOut], summary="Facilities near a point, by distance",
    responses={200: {"content": LIST_CONTENT}, **ERROR_RESPONSES},
)
async def list_facilities(
    request: Request, session: SessionDep, settings: SettingsDep,
    lat: Annotated[float | None, Query(ge=-90, le=90, description="WGS84 latitude")] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180, description="WGS84 longitude")] = None,
    radius_m: Annotated[float | None, Query(gt=0, le=MAX_RADIUS_M)] = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    format: Annotated[Literal["json", "geojson", "fiware"], Query(
        description="`geojson`: RFC 7946 FeatureCollection; `fiware`: NGSI-LD key-values")] = "json",
) -> Response:
    if (lat is None) != (lon is None):
        raise InvalidInput("give both lat and lon, or neither")
    radius = radius_m if radius_m is not None else settings.default_radius_m
    if radius > settings.max_radius_m:
        raise InvalidInput(f"radius_m: at most {settings.max_radius_m:.0f}")
    snap = await _snapshot(request, session, settings)
    hits = snap.near(lat=lat, lon=lon, radius_m=radius, kind=kind, limit=limit)
    return _render(snap, hits, format)


def _render(snap: Snapshot, hits: list[tuple[int, float | None]], fmt: str) -> Response:
    if fmt == "geojson":
        rows = ({**row, "geometry": snap.items[i].geometry} for row, (i, _) in zip(snap.rows(hits), hits, strict=True))
        return geojson.GeoJSONResponse(geojson.feature_collection(rows, geometry_key="geometry"))
    if fmt == "fiware":
        return Response(orjson.dumps([fiware.entity(snap.items[i]) for i, _ in hits]), media_type=fiware.MEDIA_TYPE)
    return Response(orjson.dumps(snap.rows(hits)), media_type="application/json")


async def _snapshot(request: Request, session: Any, settings: Any) -> Snapshot:
    async def load() -> Snapshot:
        return await replica.run_read(request.app.state, lambda s: availability_service.snapshot(  # read replica
            s, now=datetime.now(UTC), stale_after_s=settings.stale_after_s, timezone=settings.timezone), session)

    cache: facility_cache.FacilityCache | None = getattr(request.app.state, "facility_cache", None)
    return await (cache.get(load) if cache is not None else load())


@router.get(
    "/{facility_id}", response_model=FacilityDetail, summary="One facility with its attributes",
    responses={**ERROR_RESPONSES},
)
async def get_facility(facility_id: FacilityId, request: Request, session: SessionDep,
                       settings: SettingsDep) -> dict[str, Any]:
    async def read(session: Any) -> dict[str, Any]:
        item = await availability_service.facility(
            session, facility_id=facility_id, now=datetime.now(UTC),
            stale_after_s=settings.stale_after_s, timezone=settings.timezone)
        rules = await availability_service.facility_rules(session, facility_id=facility_id)
        return {**item.public_dict(), **_attributes(item), "rules": rules}

    return await replica.run_read(request.app.state, read, session)  # the read replica when fresh


def _attributes(item: FacilityAvailability) -> dict[str, Any]:
    return {
        "opening_hours": item.opening_hours, "public_hours": item.public_hours, "fee": item.fee,
        "accessible_total": item.accessible_total, "accessible_free": item.accessible_free,
        "ev_total": item.ev_total, "ev_free": item.ev_free, "geometry": item.geometry,
    }


_STEP = re.compile(r"^(\d{1,7})([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_step(text: str) -> int:
    """``"15m"``, ``"1h"``, ``"900"`` (seconds) → seconds; at least 60."""
    match = _STEP.match(text.strip())
    if not match:
        raise InvalidInput(f"step: {text!r} is not a duration like 15m, 1h or 900")
    seconds = int(match[1]) * _UNIT_S[match[2]]
    if not 60 <= seconds <= 7 * 86400:
        raise InvalidInput("step: between 1 minute and 7 days")
    return seconds


@router.get(
    "/{facility_id}/history", response_model=HistoryOut,
    summary="Occupancy time series from the event history", responses={**ERROR_RESPONSES},
)
async def facility_history(
    facility_id: FacilityId, request: Request, session: SessionDep,
    since: Annotated[datetime | None, Query(description="RFC 3339; default: 24 h before until")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339; default: now")] = None,
    step: Annotated[str, Query(max_length=10, description="15m, 1h, 900 (s)…")] = "15m",
) -> HistoryOut:
    step_s = parse_step(step)
    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=24)
    points = await replica.run_read(request.app.state, lambda s: availability_service.history(  # read replica
        s, facility_id=facility_id, since=since, until=until, step_s=step_s), session)
    return HistoryOut(facility_id=facility_id, since=since, until=until, step_s=step_s,
                      points=[HistoryPoint(**p.__dict__) for p in points])
