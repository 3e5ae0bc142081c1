"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.api.deps import SettingsDep
from app.core import health as health_service

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable",
    responses={503: {"description": "a dependency is down"}},
)
async def readyz(settings: SettingsDep, request: Request) -> JSONResponse:
    database, broker = await asyncio.gather(
        health_service.check_database(settings), health_service.check_broker(settings)
    )
    ready = database.ok and broker.ok
    body = {
        "ready": ready,
        "database": {"ok": database.ok, "detail": database.detail},
        "broker": {"ok": broker.ok, "detail": broker.detail},
    }
    if (reads := getattr(request.app.state, "reads", None)) is not None and reads.configured:
        body["read_replica"] = reads.readiness()  # issue 13: not a readiness condition (the primary serves)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
