"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from app.core import health as health_service

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readiness(app: Any) -> health_service.Readiness:
    """The app's cached readiness (made on first use; the database is asked through its pool)."""
    if getattr(app.state, "readiness", None) is None:
        async def database() -> None:
            async with app.state.engine.connect() as conn:
                await conn.execute(text("SELECT postgis_version()"))

        app.state.readiness = health_service.Readiness(app.state.settings, database)
    ready: health_service.Readiness = app.state.readiness
    return ready


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable",
    description="Kept for `CITYPARK_READYZ_CACHE_S` seconds. A dependency that is down is named, "
                "with no error text (`unreachable`, `no answer`, `refused the connection`).",
    responses={503: {"description": "a dependency is down: `{\"error\": \"not_ready\", \"detail\", ...}`"}},
)
async def readyz(request: Request) -> JSONResponse:
    result = await readiness(request.app).get()
    body: dict[str, Any] = {
        "ready": result.ok,
        "database": {"ok": result.database.ok, "detail": result.database.detail},
        "broker": {"ok": result.broker.ok, "detail": result.broker.detail},
    }
    if not result.ok:  # the contract's error body, beside the per-dependency fields
        body = {"error": "not_ready", "detail": " and ".join(result.down) + " down", **body}
    if (reads := getattr(request.app.state, "reads", None)) is not None and reads.configured:
        body["read_replica"] = reads.readiness()  # issue 13: not a readiness condition (the primary serves)
    return JSONResponse(body, status_code=200 if result.ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
