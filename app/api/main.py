"""The application factory: ``create_app(settings)``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from app.api import errors as api_errors
from app.api import limits, openapi, routes
from app.api.cors import CORSMiddleware
from app.core.db import create_engine, create_sessionmaker
from app.core.settings import Settings, get_settings

DESCRIPTION = (
    "citypark — 城市智慧停车: live parking availability, conflict-free space assignment for "
    "drivers, operator pushes and inventory, enforcement views. Errors are "
    '`{"error": "<kind>", "detail": "<text>"}`. Authenticate with `Authorization: Bearer <key>`.'
)


def discover_route_modules() -> list[ModuleType]:
    """Every module in ``app.api.routes`` that has a ``router``, in name order.

    A module may also define ``setup(app)`` to add startup/shutdown hooks or middleware.
    """
    found = []
    for info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        if isinstance(getattr(module, "router", None), APIRouter):
            found.append(module)
    return found


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        for hook in app.state.startup_hooks:
            await hook(app)
        try:
            yield
        finally:
            for hook in reversed(app.state.shutdown_hooks):
                await hook(app)
            await engine.dispose()

    # FastAPI's native OpenTelemetry asks the global providers on every request; operations
    # read Prometheus at /metrics, so it is on only when CITYPARK_OTEL says so
    telemetry: TelemetryConfig | None = (
        None if settings.otel else {"tracing": False, "metrics": False, "logs": False})
    app = FastAPI(title="citypark", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  telemetry=telemetry)
    app.state.settings = settings
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    limits.install(app, settings)  # before CORS, so that 413/429 answers carry CORS headers
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
        allow_headers=["Authorization", "Content-Type"],
    )
    api_errors.install(app)
    openapi.install(app)
    for module in discover_route_modules():
        app.include_router(module.router)
        if hasattr(module, "setup"):
            module.setup(app)
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory app.api.main:app_factory``."""
    return create_app()
