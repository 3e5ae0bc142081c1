"""The application factory: ``create_app(settings)``.

Everything the app is made of is listed here, in order: the routers (``ROUTERS``), the
middleware (outermost first), the per-process state (the facility snapshot cache) and the
background parts started in the lifespan (the assignment runtime, the rejected-messages metrics
refresher). Nothing is discovered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.api import catch_all, input_guard, limits, openapi
from app.api import errors as api_errors
from app.api.cors import CORSMiddleware
from app.api.routes import (
    admin,
    assignments,
    datex2,
    enforcement,
    facilities,
    forecast,
    health,
    ingest_metrics,
    management,
    ngsi_ld,
    operators,
    passages,
    rules,
    spaces,
    web,
)
from app.assignments import runtime as assignment_runtime
from app.availability.cache import FacilityCache
from app.core import replica
from app.core.db import create_engine, create_sessionmaker
from app.core.settings import Settings, get_settings
from app.keys import listener as keys_listener
from app.passages import retention as plate_retention

DESCRIPTION = (
    "citypark — 城市智慧停车: live parking availability, conflict-free space assignment for "
    "drivers, operator pushes and inventory, enforcement views. Errors are "
    '`{"error": "<kind>", "detail": "<text>"}`. Authenticate with `Authorization: Bearer <key>`.'
)

# In this order: a path is answered by the first route that matches it, so the hot routes
# (app.api.hot) of spaces, facilities and assignments come first.
ROUTERS: list[APIRouter] = [
    spaces.router, facilities.router, assignments.router, admin.router, enforcement.router,
    health.router, ingest_metrics.router, operators.router, rules.router, web.router,
    forecast.router,
    passages.router,
    ngsi_ld.router, datex2.router,
    management.router,
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reads = replica.ReadRouter(settings, engine)  # issue 13: availability reads from a replica
        app.state.reads.start()
        await assignment_runtime.start(app)
        ingest_metrics.start(app)
        forecast.start(app)
        key_listener = keys_listener.KeyListener(settings)  # issue 13: revocations from every process
        key_listener.start()
        plate_retention.start(app)
        try:
            yield
        finally:
            await key_listener.stop()
            await app.state.reads.stop()
            await limits.close(app)
            await forecast.stop(app)
            await plate_retention.stop(app)
            await ingest_metrics.stop(app)
            await assignment_runtime.stop(app)
            await engine.dispose()

    # FastAPI's native OpenTelemetry asks the global providers on every request; operations
    # read Prometheus at /metrics, so it is on only when CITYPARK_OTEL says so
    telemetry: TelemetryConfig | None = (
        None if settings.otel else {"tracing": False, "metrics": False, "logs": False})
    app = FastAPI(title="citypark", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  telemetry=telemetry)
    app.state.settings = settings
    app.state.facility_cache = FacilityCache()
    _install_middleware(app, settings)
    api_errors.install(app)
    openapi.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    return app


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first: proxy headers (when configured), CORS, the catch-all 500, the rate and
    body limits, the input guard."""
    limits.install(app, settings)  # before CORS, so that 413/429 answers carry CORS headers
    app.add_middleware(catch_all.CatchAll)  # around the limits and every route, inside CORS
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
        allow_headers=["Authorization", "Content-Type"],
    )
    if settings.forwarded_allow_ips.strip():  # outermost: the rate limit sees the real client address
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[
            h.strip() for h in settings.forwarded_allow_ips.split(",") if h.strip()])
    # appended, not add_middleware (which puts a layer outermost): inside the limits and CORS
    app.user_middleware.append(Middleware(input_guard.InputGuard, owner=app))  # NUL, bad UTF-8, repeated params


def app_factory() -> FastAPI:
    """For ``uvicorn --factory app.api.main:app_factory``."""
    return create_app()
