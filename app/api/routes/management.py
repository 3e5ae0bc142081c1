"""City management views (role ``manager``; admin too): utilization, shared parking, pricing,
the pressure map and a facility's weekday × hour heat table. JSON, or ``?format=csv`` (UTF-8
with a BOM, so that Excel reads the Chinese names). Every answer first brings the hourly rollups
up to date (``app.management.rollups.refresh``: only what changed since the last run)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import SessionDep, SettingsDep, require_roles
from app.api.openapi import ERROR_RESPONSES
from app.core.csv_export import rows_to_csv
from app.core.errors import InvalidInput, NotFound
from app.core.settings import Settings
from app.keys.service import Principal
from app.management import pressure as pressure_service
from app.management import pricing as pricing_service
from app.management import rollups
from app.management import sharing as sharing_service
from app.management import utilization as utilization_service
from app.management.utilization import Period
from app.occupancy.messages import EPOCH_FLOOR

router = APIRouter(prefix="/v1/management", tags=["management"])

Manager = Annotated[Principal, Depends(require_roles("manager"))]
Since = Annotated[datetime | None, Query(description="RFC 3339; rounded down to the hour; default until − 28 days")]
Until = Annotated[datetime | None, Query(description="RFC 3339, exclusive; rounded up to the hour; default now")]
Format = Annotated[Literal["json", "csv"], Query(alias="format")]
Limit = Annotated[int, Query(ge=1, le=5000)]
Offset = Annotated[int, Query(ge=0)]
DEFAULT_PERIOD = timedelta(days=28)
MAX_PERIOD = timedelta(days=400)
CSV_CONTENT = {"text/csv": {"schema": {"type": "string"}}}
RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": CSV_CONTENT}, **ERROR_RESPONSES}

# the rollups' hours and their default period stay inside datetime's range (the fuzzer's 0001-01-06)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


async def _period(session: AsyncSession, settings: Settings, since: datetime | None,
                  until: datetime | None, response: Response) -> Period:
    """The asked period in whole hours, after the rollups are refreshed (capped at their watermark)."""
    now = datetime.now(UTC)
    for value in (since, until):
        if value is not None and value.tzinfo is None:
            raise InvalidInput("since and until need a UTC offset (RFC 3339)")
        if value is not None and not EPOCH_FLOOR <= value <= LATEST:
            raise InvalidInput(f"since and until must lie between {EPOCH_FLOOR:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    end = rollups.ceil_hour(until or now)
    start = rollups.floor_hour(since or end - DEFAULT_PERIOD)
    if start >= end or end - start > MAX_PERIOD:
        raise InvalidInput(f"since must be before until, at most {MAX_PERIOD.days} days apart")
    done = await rollups.refresh(session, now=now, hold_s=settings.management_hold_s,
                                 max_hours=settings.management_refresh_max_hours)
    mark = done.watermark or start
    response.headers["X-Rolled-Up-Until"] = mark.isoformat()
    return Period(start, max(start, min(end, mark)))


def _csv(items: Sequence[dict[str, Any]], columns: Sequence[str], name: str) -> StreamingResponse:
    def body() -> Iterator[str]:
        yield "\ufeff"
        yield from rows_to_csv(items, columns)

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _page(items: list[dict[str, Any]], *, request: Request, response: Response, limit: int,
          offset: int) -> list[dict[str, Any]]:
    """The contract's Lists rule: ``X-Total-Count`` and ``Link: rel="next"`` while more remain."""
    response.headers["X-Total-Count"] = str(len(items))
    page = items[offset:offset + limit]
    if offset + len(page) < len(items):
        nxt = request.url.include_query_params(limit=limit, offset=offset + len(page))
        response.headers["Link"] = f'<{nxt}>; rel="next"'
    return page


def _answer(items: list[dict[str, Any]], *, fmt: str, columns: Sequence[str], name: str, request: Request,
            response: Response, limit: int, offset: int) -> Any:
    if fmt == "csv":
        out = _csv(items, columns, name)
        out.headers["X-Total-Count"] = str(len(items))
        out.headers["X-Rolled-Up-Until"] = response.headers["X-Rolled-Up-Until"]
        return out
    return _page(items, request=request, response=response, limit=limit, offset=offset)


@router.get("/utilization", summary="Utilization by facility, zone, local hour or weekday", responses=RESPONSES)
async def utilization(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep, _: Manager,
    since: Since = None, until: Until = None, by: utilization_service.By = "facility",
    zone_m: Annotated[float, Query(gt=10, le=20_000, description="cell size of zones without a named group")] = 500,
    fmt: Format = "json", limit: Limit = 1000, offset: Offset = 0,
) -> Any:
    period = await _period(session, settings, since, until, response)
    srid = await pressure_service.inventory_srid(session)
    items = await utilization_service.utilization(session, period=period, by=by, srid=srid, zone_m=zone_m)
    return _answer(items, fmt=fmt, columns=utilization_service.COLUMNS, name=f"utilization-by-{by}",
                   request=request, response=response, limit=limit, offset=offset)


@router.get("/sharing", summary="Shared parking: use inside and outside the public windows", responses=RESPONSES)
async def sharing(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep, _: Manager,
    since: Since = None, until: Until = None, fmt: Format = "json", limit: Limit = 1000, offset: Offset = 0,
) -> Any:
    period = await _period(session, settings, since, until, response)
    items = await sharing_service.sharing(session, period=period, hold_s=settings.management_hold_s)
    return _answer(items, fmt=fmt, columns=sharing_service.COLUMNS, name="sharing", request=request,
                   response=response, limit=limit, offset=offset)


@router.get("/pricing", summary="SFpark-style fee recommendations per facility and band", responses=RESPONSES)
async def pricing(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep, _: Manager,
    since: Since = None, until: Until = None,
    target: Annotated[str, Query(description="target occupancy band in percent")] = "60-80",
    step: Annotated[float, Query(gt=0, le=1000)] = 0.5,
    min_fee: Annotated[float, Query(alias="min", ge=0)] = 0.0,
    max_fee: Annotated[float, Query(alias="max", ge=0)] = 20.0,
    period_days: Annotated[int, Query(ge=0, le=365, description="at most one change per this many days")] = 28,
    fmt: Format = "json", limit: Limit = 1000, offset: Offset = 0,
) -> Any:
    rule = rule_of(target=target, step=step, floor=min_fee, cap=max_fee, period_days=period_days)
    period = await _period(session, settings, since, until, response)
    items = await pricing_service.recommendations(session, period=period, rule=rule, as_of=period.until)
    return _answer(items, fmt=fmt, columns=pricing_service.COLUMNS, name="pricing", request=request,
                   response=response, limit=limit, offset=offset)


def rule_of(*, target: str, step: float, floor: float, cap: float, period_days: int) -> pricing_service.Rule:
    low, high = pricing_service.parse_target(target)
    if floor > cap:
        raise InvalidInput("min must not be above max")
    return pricing_service.Rule(low=low, high=high, step=step, floor=floor, cap=cap, period_days=period_days)


@router.get("/pressure", summary="Pressure map: share of time each cell was ≥ 85 % occupied",
            responses=ERROR_RESPONSES)
async def pressure(
    response: Response, session: SessionDep, settings: SettingsDep, _: Manager,
    since: Since = None, until: Until = None, cell_m: Annotated[float, Query(ge=25, le=5000)] = 250,
) -> dict[str, Any]:
    period = await _period(session, settings, since, until, response)
    return await pressure_service.pressure(session, period=period, cell_m=cell_m, hold_s=settings.management_hold_s)


@router.get("/facilities/{facility_id}/heat", summary="A facility's occupancy by local weekday × hour",
            responses=RESPONSES)
async def heat(
    facility_id: str, response: Response, session: SessionDep, settings: SettingsDep, _: Manager,
    since: Since = None, until: Until = None, fmt: Format = "json",
) -> Any:
    period = await _period(session, settings, since, until, response)
    cells = await utilization_service.heat(session, period=period, facility_id=facility_id)
    if not cells and not await utilization_service.facility_exists(session, facility_id=facility_id):
        raise NotFound(f"no facility {facility_id!r}")
    if fmt == "csv":
        return _csv(cells, ("weekday", "hour", "occupancy", "unknown_share"), f"heat-{facility_id}")
    return {"facility_id": facility_id, "cells": cells}
