"""Public availability: facilities near a point, one facility, its occupancy history.

The list endpoint answers from a per-process snapshot of every facility's availability,
refreshed at most every second (``app.availability.cache``); it is a hot route (``app.api.hot``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.api import geojson, hot, paging
from app.api.deps import SessionDep, SettingsDep, transaction
from app.api.openapi import ERROR_RESPONSES
from app.availability import fiware
from app.availability import search as facility_search
from app.availability import service as availability_service
from app.availability.cache import FacilityCache
from app.availability.service import FacilityAvailability, Snapshot
from app.core import replica
from app.core.errors import InvalidInput
from app.core.settings import Settings
from app.devices import health as device_health

router = APIRouter(prefix="/v1/facilities", tags=["availability"])

MAX_RADIUS_M = 5000.0  # also capped by settings.max_radius_m
MAX_LIMIT = 500
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
    no_parking: bool = Field(False, description="a no-parking rule covers the whole facility now (禁停)")


class RuleOut(BaseModel):
    kind: Literal["time_limit", "no_parking"]
    max_stay_minutes: int | None
    days: str
    start: str = Field(serialization_alias="from")
    end: str = Field(serialization_alias="to")


class SensorHealth(BaseModel):
    """Over the facility's space sensors; per sensor: ``GET /v1/facilities/{id}/sensors``."""

    sensors: int
    lorawan: int = Field(description="sensors that are LoRaWAN devices (dev_eui)")
    reporting: int = Field(description="heard within the staleness window")
    silent: int
    low_battery: int = Field(description="battery below 3.2 V")
    battery_v_min: float | None
    temperature_c_mean: float | None
    rssi_dbm_mean: float | None
    snr_db_mean: float | None
    reset_last_24h: int = Field(description="sensors that reported a reset (start-up, frame counter) in 24 h")
    last_seen: datetime | None


class SensorOut(BaseModel):
    sensor_id: str
    space_id: str | None
    kind: str
    dev_eui: str | None
    sensor_model: str | None
    last_seen: datetime | None
    battery_v: float | None
    temperature_c: float | None
    rssi_dbm: float | None
    snr_db: float | None
    last_fcnt: int | None = Field(description="LoRaWAN frame counter of the newest frame")
    firmware: str | None
    last_reset_at: datetime | None
    last_reset_cause: str | None


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
    sensor_health: SensorHealth


class HistoryOut(BaseModel):
    facility_id: str
    since: datetime
    until: datetime
    step_s: int
    points: list[availability_service.HistoryPoint]


LIST_CONTENT = {**geojson.geojson_content(), fiware.MEDIA_TYPE: {"schema": {
    "type": "array", "items": {"type": "object", "required": ["id", "type", "location"]}}}}


class FacilitiesQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, description="WGS84 latitude")
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, description="WGS84 longitude")
    radius_m: float | None = Field(None, gt=0, le=MAX_RADIUS_M, allow_inf_nan=False)
    kind: Kind | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    format: Literal["json", "geojson", "fiware"] = Field(
        "json", description="`geojson`: RFC 7946 FeatureCollection; `fiware`: NGSI-LD key-values")
    q: str | None = Field(None, min_length=1, max_length=facility_search.MAX_QUERY, description=(
        "name search (case, width and spaces ignored; the id too): best first, or by distance with lat/lon"))
    offset: int = Field(0, ge=0, le=10_000_000, description=(
        "skip this many: follow `Link: rel=\"next\"` (the order depends on the inventory only, so "
        "pages neither repeat nor skip a facility while availability changes)"))


async def answer_list_facilities(request: Request) -> Response:
    """The one handler of ``GET /v1/facilities`` (a hot route, ``app.api.hot``)."""
    q = hot.query(request, FacilitiesQuery)
    settings: Settings = request.app.state.settings
    if (q.lat is None) != (q.lon is None):
        raise InvalidInput("give both lat and lon, or neither")
    radius = q.radius_m if q.radius_m is not None else settings.default_radius_m
    if radius > settings.max_radius_m:
        raise InvalidInput(f"radius_m: at most {settings.max_radius_m:.0f}")
    snap = await _snapshot(request)
    every = len(snap.items)
    if q.q is not None:  # issue 18: name search
        hits = facility_search.search(snap, q=q.q, lat=q.lat, lon=q.lon, radius_m=radius, kind=q.kind,
                                      limit=every)
    else:
        hits = snap.near(lat=q.lat, lon=q.lon, radius_m=radius, kind=q.kind, limit=every)
    end = q.offset + q.limit
    headers = {"X-Total-Count": str(len(hits))}
    if end < len(hits):  # the contract's "Lists" rule (app.api.paging)
        headers["Link"] = paging.link_next(paging.next_url(request, offset=str(end), limit=str(q.limit)))
    response = _render(snap, hits[q.offset:end], q.format)
    response.headers.update(headers)
    return response


async def list_facilities(q: Annotated[FacilitiesQuery, Query()]) -> list[FacilityOut]:
    """OpenAPI description only: requests are answered by :func:`answer_list_facilities`."""
    raise NotImplementedError


router.add_api_route(
    "", list_facilities, methods=["GET"], route_class_override=hot.hot_route(answer_list_facilities),
    response_model=list[FacilityOut], summary="Facilities near a point, by distance, paged",
    responses={200: {"content": LIST_CONTENT, "headers": paging.OPENAPI_HEADERS}, **ERROR_RESPONSES},
)


def _render(snap: Snapshot, hits: list[tuple[int, float | None]], fmt: str) -> Response:
    if fmt == "geojson":
        rows = ({**row, "geometry": snap.items[i].geometry} for row, (i, _) in zip(snap.rows(hits), hits, strict=True))
        return geojson.GeoJSONResponse(geojson.feature_collection(rows, geometry_key="geometry"))
    if fmt == "fiware":
        return Response(orjson.dumps([fiware.entity(snap.items[i]) for i, _ in hits]), media_type=fiware.MEDIA_TYPE)
    return Response(orjson.dumps(snap.rows(hits)), media_type="application/json")


async def _snapshot(request: Request) -> Snapshot:
    """The process's snapshot: the cached one while fresh, else reloaded (from the read replica when
    one is configured and current, else in the request's transaction)."""
    cache: FacilityCache = request.app.state.facility_cache
    if (snap := cache.fresh()) is not None:
        return snap
    settings: Settings = request.app.state.settings
    async with transaction(request) as session:
        return await cache.get(lambda: replica.run_read(request.app.state, lambda s: availability_service.snapshot(
            s, now=datetime.now(UTC), stale_after_s=settings.stale_after_s, timezone=settings.timezone), session))


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
        health = await device_health.facility_summary(  # sensor health (app/devices/health.py)
            session, facility_id=facility_id, now=datetime.now(UTC), stale_after_s=settings.stale_after_s)
        return {**item.public_dict(), **_attributes(item), "rules": rules, "sensor_health": health}

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
                      points=points)


@router.get(
    "/{facility_id}/sensors", response_model=list[SensorOut],
    summary="The facility's sensors with their health (battery, temperature, radio, resets), paged",
    responses={200: {"headers": paging.OPENAPI_HEADERS}, **ERROR_RESPONSES},
)
async def facility_sensors(
    facility_id: FacilityId, request: Request, response: Response, session: SessionDep, settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    await availability_service.facility(
        session, facility_id=facility_id, now=datetime.now(UTC),
        stale_after_s=settings.stale_after_s, timezone=settings.timezone)  # 404 for an unknown id
    items, total = await device_health.facility_sensors(session, facility_id=facility_id, limit=limit,
                                                        offset=offset)
    response.headers.update(paging.headers(request, total=total, **(
        {"limit": str(limit), "offset": str(offset + len(items))} if offset + len(items) < total else {})))
    return items
