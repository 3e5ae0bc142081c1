"""/healthz, /readyz against the real database and broker, /metrics, /openapi.json."""

from __future__ import annotations

import httpx

from app.core.settings import Settings
from tests.conftest import app_client


async def test_readyz_is_200_with_database_and_broker_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["database"]["ok"]
    assert body["broker"]["ok"]


async def test_readyz_is_503_with_a_wrong_database_url(db_settings: Settings) -> None:
    broken = db_settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:5432/citypark_no_such_db"})
    async with app_client(broken) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False


async def test_readyz_is_503_with_no_broker(db_settings: Settings) -> None:
    broken = db_settings.model_copy(update={"mqtt_url": "mqtt://127.0.0.1:1"})
    async with app_client(broken) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False


async def test_healthz_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "python_info" in metrics.text
    spec = (await client.get("/openapi.json")).json()
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])


async def test_unknown_path_uses_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
