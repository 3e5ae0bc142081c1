"""``GET /v1/spaces/free``: nearest free, unheld spaces, answered from the process's index.

The answer comes from ``app.state.matching`` (an in-memory index kept current from
PostgreSQL notifications), so a read costs almost nothing beyond HTTP; before the index is
loaded it comes from the PostGIS KNN query, which applies the same rules. It is a hot route
(``app.api.hot``): one handler, described by :class:`FreeSpacesQuery` and :func:`free_spaces`.

Pages follow the contract's "Lists" rule (``app.api.paging``): nearest first, the next page
after a keyset cursor (the last space's distance and id), so a client following ``Link: next``
sees each space at most once while spaces come and go; with ``bbox``, every free space in the
box by id (the web map at close zoom), with ``X-Total-Count``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api import geojson, hot, paging
from app.api.deps import transaction
from app.api.geojson import parse_bbox
from app.api.openapi import ERROR_RESPONSES
from app.assignments import service
from app.assignments.runtime import MatchingRuntime, free_query
from app.core.errors import InvalidInput

router = APIRouter(prefix="/v1/spaces", tags=["matching"])
MAX_BBOX_LIMIT = 1000


class FreeSpacesQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, description="WGS84 latitude (or bbox)")
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, description="WGS84 longitude (or bbox)")
    bbox: str | None = Field(None, max_length=200, examples=["122.99,41.10,123.00,41.11"], description=(
        "minlon,minlat,maxlon,maxlat: every free space in the box (instead of lat/lon), by id, "
        "paged (`limit` up to 1000) with `Link: rel=\"next\"` and `X-Total-Count`"))
    limit: int = Field(10, ge=1, le=MAX_BBOX_LIMIT, description=(
        f"page size: at most {service.MAX_LIMIT} nearest, {MAX_BBOX_LIMIT} with bbox"))
    radius_m: float | None = Field(None, gt=0, allow_inf_nan=False, description="default and maximum from settings")
    accessible: bool = False
    ev: bool = False
    format: Literal["json", "geojson"] = Field("json", description="`geojson`: RFC 7946")
    cursor: str | None = Field(None, max_length=paging.MAX_CURSOR, description=paging.CURSOR_DESCRIPTION)

    @model_validator(mode="after")
    def _a_point_or_a_box(self) -> FreeSpacesQuery:
        if self.bbox is None and (self.lat is None or self.lon is None):  # raised as is: the route's 422
            raise InvalidInput(f"query.{'lat' if self.lat is None else 'lon'}: Field required (or give bbox)")
        return self


class FreeSpaceOut(BaseModel):
    space_id: str
    facility_id: str
    lat: float
    lon: float
    distance_m: float | None = Field(None, description="from lat/lon (absent with bbox)")
    accessible: bool | None = Field(None, description="with bbox only")
    ev: bool | None = Field(None, description="with bbox only")


async def answer_free_spaces(request: Request) -> Response:
    """The one handler of ``GET /v1/spaces/free``: nearest first after the cursor, or a box by id."""
    q = hot.query(request, FreeSpacesQuery)
    if q.bbox is not None:
        return await _in_bbox(request, q)
    if q.lat is None or q.lon is None:  # refused by the model already; for the type checker
        raise InvalidInput("query.lat: Field required (or give bbox)")
    if q.limit > service.MAX_LIMIT:
        raise InvalidInput(f"query.limit: at most {service.MAX_LIMIT} nearest (up to {MAX_BBOX_LIMIT} with bbox)")
    state = request.app.state
    query = service.AssignmentRequest(q.lat, q.lon, accessible=q.accessible, ev=q.ev,
                                      radius_m=service.check_radius(q.radius_m, state.settings))
    runtime: MatchingRuntime = state.matching
    after = _after(q.cursor)
    if q.format == "json" and (found := runtime.free_page_json(after, **free_query(query, q.limit))) is not None:
        return Response(found[0], media_type="application/json", headers=_next(request, found[1]))
    async with transaction(request) as session:
        rows, nxt = await runtime.free_page(session, query, q.limit, after)
    headers = _next(request, nxt)
    if q.format == "geojson":
        return geojson.GeoJSONResponse(geojson.feature_collection(rows, id_key="space_id"), headers=headers)
    return Response(orjson.dumps(rows), media_type="application/json", headers=headers)


def _after(cursor: str | None) -> Any:
    """A nearest-first cursor: [dot or null, space id, metres]."""
    value = paging.decode_cursor(cursor)
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[1], str)
            and (value[0] is None or isinstance(value[0], float)) and isinstance(value[2], int | float)):
        raise InvalidInput("cursor: not a cursor of this list (take it from the Link header)")
    return value[0], value[1], float(value[2])


def _next(request: Request, nxt: Any) -> dict[str, str]:
    if nxt is None:
        return {}
    return paging.headers(request, cursor=paging.encode_cursor(list(nxt)))


async def _in_bbox(request: Request, q: FreeSpacesQuery) -> Response:
    box = parse_bbox(q.bbox)
    if box is None:
        raise InvalidInput("query.bbox: Field required")
    after_id = paging.decode_cursor(q.cursor)
    if after_id is not None and not isinstance(after_id, str):
        raise InvalidInput("cursor: not a cursor of this list (take it from the Link header)")
    runtime: MatchingRuntime = request.app.state.matching
    async with transaction(request) as session:
        rows, total, more = await runtime.free_in_bbox(session, box, limit=q.limit, accessible=q.accessible,
                                                       ev=q.ev, after_id=after_id)
    headers = paging.headers(request, total=total,
                             **({"cursor": paging.encode_cursor(rows[-1]["space_id"])} if more else {}))
    if q.format == "geojson":
        return geojson.GeoJSONResponse(geojson.feature_collection(rows, id_key="space_id"), headers=headers)
    return Response(orjson.dumps(rows), media_type="application/json", headers=headers)


async def free_spaces(q: Annotated[FreeSpacesQuery, Query()]) -> list[FreeSpaceOut]:
    """OpenAPI description only: requests are answered by :func:`answer_free_spaces`."""
    raise NotImplementedError


router.add_api_route(
    "/free", free_spaces, methods=["GET"], route_class_override=hot.hot_route(answer_free_spaces),
    response_model=list[FreeSpaceOut], summary="Nearest free, unheld spaces (or every one in a box), paged",
    responses={200: {"content": geojson.geojson_content(), "headers": paging.OPENAPI_HEADERS}, **ERROR_RESPONSES},
)
