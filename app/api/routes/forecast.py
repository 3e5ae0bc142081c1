"""Availability forecasts: one facility's, and facilities near a destination by the chance of a
free space on arrival. Without ``as_of``, answers come from the process's board (every
facility's forecast, recomputed every ``CITYPARK_FORECAST_BOARD_S``); with it, they are computed
from the data before ``as_of`` by the same code."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api import paging
from app.api.deps import SessionDep, SettingsDep
from app.api.openapi import ERROR_RESPONSES
from app.core.db import raw_connection
from app.core.errors import InvalidInput, NotFound
from app.core.settings import Settings
from app.forecast import service as forecast_service
from app.occupancy.service import driver_connection

router = APIRouter(tags=["forecast"])
FacilityId = Annotated[str, Path(min_length=1, max_length=100, description="facility id")]
MAX_LIMIT = 100


class PointOut(BaseModel):
    horizon_min: float
    at: datetime
    free: float | None = Field(description="expected free spaces")
    free_p10: float | None
    free_p90: float | None
    p_any_free: float | None = Field(description="probability that at least one space is free")


class ForecastOut(BaseModel):
    facility_id: str
    as_of: datetime = Field(description="only data observed before this instant was used")
    total: int
    model: str = Field(description="gradient_boosting, weekly_profile, persistence, closed or none")
    trained_at: datetime | None
    points: list[PointOut]


class NearOut(BaseModel):
    id: str
    name: str
    distance_m: float
    p_any_free: float | None
    free: float | None
    model: str
    at: datetime


@router.get("/v1/facilities/{facility_id}/forecast", response_model=ForecastOut, responses={**ERROR_RESPONSES},
            summary="Expected free spaces per horizon, with a p10–p90 interval")
async def facility_forecast(
    facility_id: FacilityId, request: Request, session: SessionDep, settings: SettingsDep,
    horizons: Annotated[str | None, Query(max_length=200, description="minutes, e.g. 15,30,60,120")] = None,
    as_of: Annotated[datetime | None, Query(description="RFC 3339; default now")] = None,
) -> Response:
    wanted = forecast_service.parse_horizons(horizons)
    board = _board(request)
    if as_of is None and board is not None and _fresh(board, settings) and set(wanted) <= set(
            forecast_service.BOARD_HORIZONS):
        found = board.forecasts.get(facility_id)
        if found is None:
            raise NotFound(f"no facility {facility_id!r}")
        return Response(orjson.dumps(found.as_json(wanted)), media_type="application/json")
    conn = await driver_connection(session)
    result = await forecast_service.forecast(conn, facility_ids=[facility_id], as_of=as_of or datetime.now(UTC),
                                             horizons=wanted, country=settings.forecast_holidays)
    return Response(orjson.dumps(result[0].as_json()), media_type="application/json")


def _board(request: Request) -> forecast_service.Board | None:
    board: forecast_service.Board | None = getattr(request.app.state, "forecast_board", None)
    return board


def _publish(app: FastAPI, board: forecast_service.Board | None) -> None:
    """This app's board, also the process's (what the assignment of far drivers reads)."""
    app.state.forecast_board = board
    forecast_service.publish(board)


def _fresh(board: forecast_service.Board, settings: Settings) -> bool:
    age = (datetime.now(UTC) - board.as_of).total_seconds()
    return age <= max(3 * settings.forecast_board_s, 60.0)


@router.get("/v1/forecast/near", response_model=list[NearOut],
            responses={200: {"headers": paging.OPENAPI_HEADERS}, **ERROR_RESPONSES},
            summary="Facilities near a destination, likeliest to have a free space on arrival first")
async def near(
    request: Request, session: SessionDep, settings: SettingsDep,
    lat: Annotated[float, Query(ge=-90, le=90)], lon: Annotated[float, Query(ge=-180, le=180)],
    radius_m: Annotated[float | None, Query(gt=0)] = None,
    eta_min: Annotated[float, Query(ge=0, le=240, description="minutes until arrival")] = 15.0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    radius = settings.default_radius_m if radius_m is None else radius_m
    if radius > settings.max_radius_m:
        raise InvalidInput(f"radius_m: at most {settings.max_radius_m:.0f}")
    board = _board(request)
    if board is None or not _fresh(board, settings):
        board = await forecast_service.build_board(await driver_connection(session),
                                                   country=settings.forecast_holidays)
        _publish(request.app, board)
    items = board.near(lat=lat, lon=lon, radius_m=radius, eta_min=eta_min)
    page = items[offset:offset + limit]
    more = offset + limit < len(items)
    headers = paging.headers(request, total=len(items), **(
        {"offset": str(offset + limit), "limit": str(limit)} if more else {}))
    return Response(orjson.dumps(page), media_type="application/json", headers=headers)


# --- the board's refresher, started by the app's lifespan -------------------------------------


async def _refresh(app: FastAPI, settings: Settings) -> None:
    while True:
        try:
            async with raw_connection(settings) as conn:
                _publish(app, await forecast_service.build_board(conn, country=settings.forecast_holidays))
        except Exception:  # noqa: BLE001 - a failed refresh keeps the last board; the next one retries
            import logging

            logging.getLogger(__name__).exception("forecast board refresh failed")
        await asyncio.sleep(settings.forecast_board_s)


def start(app: FastAPI) -> None:
    """Keep the board fresh in the background (unless ``forecast_board_s`` is 0)."""
    settings: Settings = app.state.settings
    forecast_service.FAR_ETA_MIN[0] = settings.forecast_far_eta_min
    app.state.forecast_task = asyncio.create_task(_refresh(app, settings)) if settings.forecast_board_s > 0 else None


async def stop(app: FastAPI) -> None:
    task: asyncio.Task[Any] | None = getattr(app.state, "forecast_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    board = getattr(app.state, "forecast_board", None)
    if board is not None and forecast_service.current() is board:
        forecast_service.publish(None)
