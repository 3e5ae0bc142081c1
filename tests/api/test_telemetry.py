"""FastAPI's native OpenTelemetry runs only when ``CITYPARK_OTEL`` asks for it (it consults
the global providers on every request; Prometheus ``/metrics`` does not need it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry import trace

from app.api.main import create_app
from app.core.settings import Settings


class _Recording(trace.TracerProvider):
    """A configured tracer provider that only counts who asks it for a tracer."""

    def __init__(self) -> None:
        self.asked = 0

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.asked += 1
        return trace.NoOpTracer()


@pytest.mark.parametrize(("otel", "traced"), [(False, False), (True, True)])
async def test_native_telemetry_follows_the_setting(monkeypatch: pytest.MonkeyPatch, otel: bool,
                                                    traced: bool) -> None:
    provider = _Recording()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    app = create_app(Settings(otel=otel))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert (provider.asked > 0) is traced
