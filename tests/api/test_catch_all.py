"""Issue 13 item 9: an unexpected error is a 500 with the contract's body (no exception text),
counted in /metrics and logged with its traceback; routes registered in this test's app only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY

from app.api.main import create_app
from app.core.settings import Settings

SECRET = "password=hunter2 at 10.0.0.7"  # what an exception message may hold; never sent


def _boom() -> None:
    raise RuntimeError(SECRET)


async def _stream_then_boom() -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"first line\n"
        raise RuntimeError(SECRET)

    return StreamingResponse(body(), media_type="text/plain")


def _unhandled(method: str) -> float:
    return REGISTRY.get_sample_value("citypark_http_unhandled_errors_total", {"method": method}) or 0.0


@pytest.fixture
async def raising(db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = db_settings.model_copy(update={"cors_origins": ["https://app.example"]})
    app = create_app(settings)
    app.add_api_route("/v1/test-boom", _boom, methods=["GET", "POST"])
    app.add_api_route("/ngsi-ld/v1/test-boom", _boom)
    app.add_api_route("/v1/test-stream-boom", _stream_then_boom)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)  # raise_app_exceptions: nothing may escape the app
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_an_unexpected_error_is_a_500_with_the_error_body(raising: httpx.AsyncClient, caplog) -> None:  # type: ignore[no-untyped-def]
    before = _unhandled("GET"), _unhandled("POST")
    with caplog.at_level(logging.ERROR, logger="app.api.catch_all"):
        got = await raising.get("/v1/test-boom", headers={"Origin": "https://app.example"})
        posted = await raising.post("/v1/test-boom", json={"x": 1})
    for response in (got, posted):
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"error", "detail"}
        assert body["error"] == "internal_error"
        assert SECRET not in response.text
        assert "RuntimeError" not in response.text
    assert got.headers["access-control-allow-origin"] == "https://app.example"  # readable by the web app
    assert (_unhandled("GET") - before[0], _unhandled("POST") - before[1]) == (1, 1)
    logged = [r for r in caplog.records if r.name == "app.api.catch_all"]
    assert len(logged) == 2
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in logged)  # the traceback, server-side
    ref = got.json()["detail"].split("ref ")[1].split(")")[0]
    assert ref in logged[0].getMessage()  # the client's ref finds the log line


async def test_on_ngsi_ld_paths_the_500_is_also_a_problem_details(raising: httpx.AsyncClient) -> None:
    response = await raising.get("/ngsi-ld/v1/test-boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["type"] == "https://uri.etsi.org/ngsi-ld/errors/InternalError"
    assert body["status"] == 500
    assert SECRET not in response.text


async def test_an_error_after_the_answer_began_is_logged_and_counted(raising: httpx.AsyncClient, caplog) -> None:  # type: ignore[no-untyped-def]
    before = _unhandled("GET")
    with caplog.at_level(logging.ERROR, logger="app.api.catch_all"), pytest.raises(RuntimeError):
        await raising.get("/v1/test-stream-boom")  # re-raised to the server, which cuts the connection
    assert _unhandled("GET") - before == 1
    assert any(r.exc_info for r in caplog.records if r.name == "app.api.catch_all")


async def test_metrics_list_the_counter(raising: httpx.AsyncClient) -> None:
    await raising.get("/v1/test-boom")
    text = (await raising.get("/metrics")).text
    assert 'citypark_http_unhandled_errors_total{method="GET"}' in text
