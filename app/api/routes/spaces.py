"""``GET /v1/spaces/free``: nearest free, unheld spaces, answered from the process's index.

The answer comes from ``app.state.matching`` (an in-memory index kept current from
PostgreSQL notifications) so a read costs almost nothing beyond HTTP; before the index is
loaded it comes from the PostGIS KNN query, which applies the same rules. The plain JSON
request is answered by ``app.api.free_spaces_fast`` in front of the router; this route is
the specification and handles everything else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.api import geojson
from app.api.openapi import ERROR_RESPONSES
from app.assignments import eligibility as matching_eligibility
from app.assignments import service

router = APIRouter(prefix="/v1/spaces", tags=["matching"])


class FreeSpaceOut(BaseModel):
    space_id: str
    facility_id: str
    lat: float
    lon: float
    distance_m: float


@router.get(
    "/free", response_model=list[FreeSpaceOut], summary="Nearest free, unheld spaces",
    responses={200: {"content": geojson.geojson_content()}, **ERROR_RESPONSES},
)
async def free_spaces(
    request: Request,
    lat: Annotated[float, Query(ge=-90, le=90, description="WGS84 latitude")],
    lon: Annotated[float, Query(ge=-180, le=180, description="WGS84 longitude")],
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = 10,
    radius_m: Annotated[float | None, Query(gt=0, description="default and maximum from settings")] = None,
    accessible: bool = False,
    ev: bool = False,
    format: Annotated[Literal["json", "geojson"], Query(description="`geojson`: RFC 7946")] = "json",
) -> Response:
    settings = request.app.state.settings
    radius = service.check_radius(radius_m, settings)
    runtime = getattr(request.app.state, "matching", None)
    rows = runtime.free_spaces(lat=lat, lon=lon, limit=limit, radius_m=radius, accessible=accessible,
                               ev=ev) if runtime is not None else None
    if rows is None:
        rows = await _from_sql(request, service.AssignmentRequest(lat, lon, accessible=accessible, ev=ev,
                                                                   radius_m=radius), limit)
    if format == "geojson":
        return geojson.GeoJSONResponse(geojson.feature_collection(rows, id_key="space_id"))
    return Response(orjson.dumps(rows), media_type="application/json")


async def _from_sql(request: Request, query: service.AssignmentRequest, limit: int) -> list[dict[str, Any]]:
    state = request.app.state
    runtime = getattr(state, "matching", None)
    async with state.sessionmaker() as session:
        if runtime is not None:
            eligibility = await runtime.eligibility.get(session)
        else:
            eligibility = await matching_eligibility.load(session, datetime.now(ZoneInfo(state.settings.timezone)))
        return await service.free_spaces_sql(session, query, limit=limit, settings=state.settings,
                                             eligibility=eligibility)
