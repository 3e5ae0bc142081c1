"""``GET /v1/spaces/free``: nearest free, unheld spaces, answered from the process's index.

The answer comes from ``app.state.matching`` (an in-memory index kept current from
PostgreSQL notifications), so a read costs almost nothing beyond HTTP; before the index is
loaded it comes from the PostGIS KNN query, which applies the same rules. It is a hot route
(``app.api.hot``): one handler, described by :class:`FreeSpacesQuery` and :func:`free_spaces`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.api import geojson, hot
from app.api.deps import transaction
from app.api.openapi import ERROR_RESPONSES
from app.assignments import service
from app.assignments.runtime import MatchingRuntime, free_query

router = APIRouter(prefix="/v1/spaces", tags=["matching"])


class FreeSpacesQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="WGS84 latitude")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="WGS84 longitude")
    limit: int = Field(10, ge=1, le=service.MAX_LIMIT)
    radius_m: float | None = Field(None, gt=0, allow_inf_nan=False, description="default and maximum from settings")
    accessible: bool = False
    ev: bool = False
    format: Literal["json", "geojson"] = Field("json", description="`geojson`: RFC 7946")


class FreeSpaceOut(BaseModel):
    space_id: str
    facility_id: str
    lat: float
    lon: float
    distance_m: float


async def answer_free_spaces(request: Request) -> Response:
    """The one handler of ``GET /v1/spaces/free``."""
    q = hot.query(request, FreeSpacesQuery)
    state = request.app.state
    query = service.AssignmentRequest(q.lat, q.lon, accessible=q.accessible, ev=q.ev,
                                      radius_m=service.check_radius(q.radius_m, state.settings))
    runtime: MatchingRuntime = state.matching
    if q.format == "json" and (body := runtime.free_spaces_json(**free_query(query, q.limit))) is not None:
        return Response(body, media_type="application/json")
    async with transaction(request) as session:
        rows = await runtime.nearest_free(session, query, q.limit)
    if q.format == "geojson":
        return geojson.GeoJSONResponse(geojson.feature_collection(rows, id_key="space_id"))
    return Response(orjson.dumps(rows), media_type="application/json")


async def free_spaces(q: Annotated[FreeSpacesQuery, Query()]) -> list[FreeSpaceOut]:
    """OpenAPI description only: requests are answered by :func:`answer_free_spaces`."""
    raise NotImplementedError


router.add_api_route(
    "/free", free_spaces, methods=["GET"], route_class_override=hot.hot_route(answer_free_spaces),
    response_model=list[FreeSpaceOut], summary="Nearest free, unheld spaces",
    responses={200: {"content": geojson.geojson_content()}, **ERROR_RESPONSES},
)
