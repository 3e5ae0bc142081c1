"""Enforcement views (role ``enforcement``; admin too): violations, hotspots, patrol, CSV export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from app.api import geojson, paging
from app.api.deps import SessionDep, SettingsDep, require_roles
from app.api.geojson import parse_bbox
from app.api.openapi import ERROR_RESPONSES
from app.core.csv_export import rows_to_csv
from app.core.errors import InvalidInput
from app.enforcement import hotspots as hotspots_service
from app.enforcement import patrol as patrol_service
from app.enforcement import violations as violations_service
from app.keys.service import Principal

router = APIRouter(prefix="/v1/enforcement", tags=["enforcement"])

Officer = Annotated[Principal, Depends(require_roles("enforcement"))]
Kind = Literal["overstay", "no_parking"]
MAX_LIMIT = 5000
MAX_CELLS = 5000  # hotspot cells per page
MAX_PERIOD = timedelta(days=400)
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV_CONTENT = {"text/csv": {"schema": {"type": "string"}}}

Since = Annotated[datetime | None, Query(description="RFC 3339; a time without offset is local time")]
Until = Annotated[datetime | None, Query(description="RFC 3339, exclusive; default now")]
Bbox = Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat", examples=["122.97,41.10,123.02,41.13"])]


class ViolationOut(BaseModel):
    id: int
    space_id: str
    facility_id: str
    facility_name: str | None
    operator_id: str | None
    kind: str
    rule_id: int | None
    limit_minutes: int | None
    stay_since: datetime
    started_at: datetime
    ended_at: datetime | None
    duration_minutes: float
    lat: float
    lon: float


class StopOut(BaseModel):
    order: int
    id: int
    space_id: str
    facility_id: str
    kind: str
    rule_id: int | None
    limit_minutes: int | None
    started_at: datetime
    duration_minutes: float
    lat: float
    lon: float
    leg_m: float
    cumulative_m: float


class PatrolOut(BaseModel):
    start: dict[str, float]
    count: int
    stops: list[StopOut]
    total_distance_m: float


class FeatureCollectionOut(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]]
    properties: dict[str, Any] = {}


def _aware(value: datetime | None, tz: str) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(tz))


def _query(
    *, active: bool | None, since: datetime | None, until: datetime | None, bbox: str | None,
    kind: str | None, tz: str,
) -> violations_service.Query:
    since, until = _aware(since, tz), _aware(until, tz)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be before until")
    if active is None and since is None and until is None:
        active = True  # by default, what an officer can still find in the street
    return violations_service.Query(active=active, since=since, until=until, bbox=parse_bbox(bbox), kind=kind)


@router.get(
    "/violations", response_model=list[ViolationOut], summary="Violations: active or in a period, paged",
    responses={200: {"content": {**geojson.geojson_content(), **CSV_CONTENT}, "headers": paging.OPENAPI_HEADERS},
               **ERROR_RESPONSES},
)
async def list_violations(
    request: Request, session: SessionDep, settings: SettingsDep, _: Officer,
    active: Annotated[bool | None, Query(description="true: still going on; default true without a period")] = None,
    since: Since = None, until: Until = None, bbox: Bbox = None, kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size (csv: never capped)")] = 500,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="skip this many (prefer the Link's cursor)")] = 0,
    cursor: Annotated[str | None, Query(max_length=paging.MAX_CURSOR, description=paging.CURSOR_DESCRIPTION)] = None,
    format: Annotated[Literal["json", "geojson", "csv"], Query(description="csv: the office export")] = "json",
) -> Response:
    """Newest first. The answer holds at most ``limit`` violations; while more remain, ``Link:
    <…>; rel="next"`` names the next page (a keyset cursor: each violation is seen once even as
    new ones start), and ``X-Total-Count`` says how many match. ``format=csv`` is the whole list."""
    query = _query(active=active, since=since, until=until, bbox=bbox, kind=kind, tz=settings.timezone)
    now = datetime.now(UTC)
    if format == "csv":
        return await _csv(session, query, now)
    rows = await violations_service.list_violations(session, query=query, now=now, limit=limit + 1,
                                                    offset=offset if cursor is None else 0,
                                                    after=_violation_cursor(cursor))
    more, rows = len(rows) > limit, rows[:limit]
    last = rows[-1] if more else None
    headers = paging.headers(request, total=await violations_service.count_violations(session, query=query),
                             **({} if last is None else {"offset": None, "cursor": paging.encode_cursor(
                                 [str(last["started_at"]), last["id"]])}))
    if format == "geojson":
        return geojson.GeoJSONResponse(geojson.feature_collection(rows), headers=headers)
    return Response(orjson.dumps(rows, option=orjson.OPT_UTC_Z), media_type="application/json", headers=headers)


def _violation_cursor(token: str | None) -> tuple[datetime, int] | None:
    value = paging.decode_cursor(token)
    if value is None:
        return None
    try:
        started, ident = value
        return datetime.fromisoformat(started), int(ident)
    except (TypeError, ValueError):
        raise InvalidInput("cursor: not a cursor of this list (take it from the Link header)") from None


@router.get(
    "/violations.csv", response_class=Response, summary="CSV export of violations for the office",
    responses={200: {"content": CSV_CONTENT}, **ERROR_RESPONSES},
)
async def export_violations(
    session: SessionDep, settings: SettingsDep, _: Officer,
    active: bool | None = None, since: Since = None, until: Until = None, bbox: Bbox = None,
    kind: Kind | None = None,
) -> Response:
    query = _query(active=active, since=since, until=until, bbox=bbox, kind=kind, tz=settings.timezone)
    return await _csv(session, query, datetime.now(UTC))


async def _csv(session: Any, query: violations_service.Query, now: datetime) -> Response:
    rows = await violations_service.list_violations(session, query=query, now=now, limit=None)
    stamp = now.strftime("%Y%m%dT%H%MZ")
    return StreamingResponse(
        rows_to_csv(rows, violations_service.CSV_COLUMNS), media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="violations-{stamp}.csv"'})


@router.get(
    "/hotspots", response_model=FeatureCollectionOut, summary="Violation hotspots on a metric grid, paged",
    responses={200: {"content": geojson.geojson_content(), "headers": paging.OPENAPI_HEADERS}, **ERROR_RESPONSES},
)
async def hotspots(
    request: Request, session: SessionDep, settings: SettingsDep, _: Officer,
    since: Annotated[datetime | None, Query(description="default: 24 h before until")] = None,
    until: Until = None,
    cell_m: Annotated[float, Query(ge=10, le=10_000, description="cell side in metres")] = 200,
    by: Annotated[Literal["hour"] | None, Query(description="hour: add each cell's time-of-day profile")] = None,
    bbox: Bbox = None, kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CELLS, description="cells per page")] = MAX_CELLS,
    cursor: Annotated[str | None, Query(max_length=paging.MAX_CURSOR, description=paging.CURSOR_DESCRIPTION)] = None,
) -> Response:
    """Cells by (column, row), at most ``limit``; while more remain, ``Link: rel="next"``;
    ``X-Total-Count`` (and ``properties.cells``) is the number of cells in all."""
    now = datetime.now(UTC)
    until = _aware(until, settings.timezone) or now
    since = _aware(since, settings.timezone) or until - timedelta(hours=24)
    if until - since > MAX_PERIOD:
        raise InvalidInput(f"the period may be at most {MAX_PERIOD.days} days")
    query = _query(active=None, since=since, until=until, bbox=bbox, kind=kind, tz=settings.timezone)
    collection = await hotspots_service.hotspots(
        session, query=query, cell_m=cell_m, now=now, tz=settings.timezone, by_hour=by == "hour",
        limit=limit, after=_pair(cursor, int))
    last = collection["properties"].pop("last_cell")
    headers = paging.headers(request, total=collection["properties"]["cells"],
                             **({} if last is None else {"cursor": paging.encode_cursor(last)}))
    return geojson.GeoJSONResponse(collection, headers=headers)


def _pair(token: str | None, kind: type) -> Any:
    value = paging.decode_cursor(token)
    if value is None:
        return None
    try:
        first, second = value
        return kind(first), kind(second)
    except (TypeError, ValueError):
        raise InvalidInput("cursor: not a cursor of this list (take it from the Link header)") from None


@router.get(
    "/patrol", response_model=PatrolOut, summary="Active violations as a walking route from a point, paged",
    responses={200: {"content": geojson.geojson_content(), "headers": paging.OPENAPI_HEADERS}, **ERROR_RESPONSES},
)
async def patrol(
    request: Request, session: SessionDep, _: Officer,
    lat: Annotated[float, Query(ge=-90, le=90, description="the officer's WGS84 latitude")],
    lon: Annotated[float, Query(ge=-180, le=180, description="the officer's WGS84 longitude")],
    limit: Annotated[int, Query(ge=1, le=200, description="at most this many nearest violations")] = 20,
    format: Annotated[geojson.Format, Query(description="geojson: the stops as Points")] = "json",
    cursor: Annotated[str | None, Query(max_length=paging.MAX_CURSOR, description=paging.CURSOR_DESCRIPTION)] = None,
) -> Response:
    """The ``limit`` active violations nearest the point, as a route. While more are active,
    ``Link: rel="next"`` is the next ring of them (the next nearest), routed on from this
    page's last stop; ``X-Total-Count`` is the number of active violations."""
    after, start = _patrol_cursor(cursor)
    route = await patrol_service.patrol(session, lat=lat, lon=lon, limit=limit, now=datetime.now(UTC),
                                        after=after, start=start)
    total, last = route.pop("total"), route.pop("last")
    end = route["stops"][-1] if route["stops"] else None
    headers = paging.headers(request, total=total, **({} if last is None or end is None else {
        "cursor": paging.encode_cursor([*last, end["lat"], end["lon"]])}))
    if format == "geojson":
        collection = geojson.feature_collection(route["stops"])
        collection["properties"] = {"total_distance_m": route["total_distance_m"], "start": route["start"]}
        return geojson.GeoJSONResponse(collection, headers=headers)
    return Response(orjson.dumps(route, option=orjson.OPT_UTC_Z), media_type="application/json", headers=headers)


def _patrol_cursor(token: str | None) -> tuple[tuple[float, int] | None, tuple[float, float] | None]:
    value = paging.decode_cursor(token)
    if value is None:
        return None, None
    try:
        nearness, ident, lat, lon = value
        return (float(nearness), int(ident)), (float(lat), float(lon))
    except (TypeError, ValueError):
        raise InvalidInput("cursor: not a cursor of this list (take it from the Link header)") from None
