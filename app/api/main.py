"""The application factory: ``create_app(settings)``.

Everything the app is made of is listed here, in order: the routers (``ROUTERS``), the
middleware (outermost first) and the per-process background parts started in the lifespan
(the assignment runtime, the rejected-messages metrics refresher). Nothing is discovered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware

from app.api import errors as api_errors
from app.api import facility_cache, free_spaces_fast, limits, openapi
from app.api.cors import CORSMiddleware
from app.api.routes import (
    admin,
    assignments,
    datex2,
    enforcement,
    facilities,
    health,
    ingest_metrics,
    ngsi_ld,
    operators,
    rules,
    spaces,
    web,
)
from app.assignments import runtime as assignment_runtime
from app.core.db import create_engine, create_sessionmaker
from app.core.settings import Settings, get_settings

DESCRIPTION = (
    "citypark — 城市智慧停车: live parking availability, conflict-free space assignment for "
    "drivers, operator pushes and inventory, enforcement views. Errors are "
    '`{"error": "<kind>", "detail": "<text>"}`. Authenticate with `Authorization: Bearer <key>`.'
)

# In this order: a path is matched by the first router that has it.
ROUTERS: list[APIRouter] = [
    admin.router, assignments.router, enforcement.router, facilities.router, health.router,
    ingest_metrics.router, operators.router, rules.router, spaces.router, web.router,
    ngsi_ld.router, datex2.router,
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        await assignment_runtime.start(app)
        ingest_metrics.start(app)
        try:
            yield
        finally:
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
    _install_middleware(app, settings)
    api_errors.install(app)
    openapi.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    return app


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first: rate and body limits, CORS, then the hot-path answers in front of the router."""
    limits.install(app, settings)  # before CORS, so that 413/429 answers carry CORS headers
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
        allow_headers=["Authorization", "Content-Type"],
    )
    # appended, not add_middleware (which puts a layer outermost): inside the limits and CORS
    app.state.facility_cache = facility_cache.FacilityCache()
    app.user_middleware.append(Middleware(assignments.CreateFastPath, owner=app))
    app.user_middleware.append(Middleware(facility_cache.FastPath, cache=app.state.facility_cache,
                                          settings=settings))
    app.user_middleware.append(Middleware(free_spaces_fast.FreeSpacesFastPath, owner=app))


def app_factory() -> FastAPI:
    """For ``uvicorn --factory app.api.main:app_factory``."""
    return create_app()
