"""Issue 13 item 9: every HTTP 4xx/5xx carries the contract's ``{"error", "detail"}`` — routes,
the router's own 404/405, static files, refused CORS preflights, NGSI-LD's ProblemDetails,
/readyz — whatever part of the stack answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.settings import Settings
from tests.conftest import app_client

APP = "https://app.example"
REQUESTS = [
    ("GET", "/v1/nope", {}, None, 404),
    ("GET", "/static/nope.js", {}, None, 404),
    ("DELETE", "/v1/facilities", {}, None, 405),
    ("GET", "/v1/facilities/nope", {}, None, 404),
    ("GET", "/v1/facilities?lat=41.1&lon=122.99&limit=%C2%B2", {}, None, 422),
    ("GET", "/v1/spaces/free?lat=41.1&lon=122.99&limit=" + "1" * 5000, {}, None, 422),
    ("GET", "/v1/facilities?lat=4%001", {}, None, 422),
    ("POST", "/v1/admin/keys", {"Authorization": "Basic abc"}, b"{}", 401),
    ("POST", "/v1/assignments", {"Authorization": "Bearer cpk_" + "x" * 43}, b"{}", 401),
    ("OPTIONS", "/v1/facilities", {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
     None, 400),
    ("OPTIONS", "/v1/facilities", {"Origin": APP, "Access-Control-Request-Method": "GET",
                                   "Access-Control-Request-Headers": "X-Evil"}, None, 400),
    ("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:ParkingSpot:nope", {}, None, 404),
    ("POST", "/ngsi-ld/v1/entities", {"Content-Type": "application/json"}, b"{}", 405),
    ("GET", "/ngsi-ld/v1/entities?type=ParkingSpot", {"Accept": "text/csv"}, None, 406),
    ("GET", "/ngsi-ld/v1/nope", {}, None, 404),
    ("GET", "/datex2/nope", {}, None, 404),
]


@pytest.fixture
async def strict(db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(db_settings.model_copy(update={"cors_origins": [APP]})) as client:
        yield client


async def test_every_error_answer_has_the_error_body(strict: httpx.AsyncClient) -> None:
    for method, path, headers, body, status in REQUESTS:
        response = await strict.request(method, path, headers=headers, content=body)
        assert response.status_code == status, (method, path, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/json"), (method, path)
        parsed = response.json()
        assert isinstance(parsed.get("error"), str), (method, path, parsed)
        assert isinstance(parsed.get("detail"), str), (method, path, parsed)
        assert parsed["detail"], (method, path, parsed)


async def test_a_refused_preflight_says_why_in_the_error_body(strict: httpx.AsyncClient) -> None:
    response = await strict.options("/v1/facilities", headers={"Origin": "https://evil.example",
                                                               "Access-Control-Request-Method": "GET"})
    assert response.status_code == 400
    assert response.json()["error"] == "cors_refused"
    assert "origin" in response.json()["detail"]
    assert "access-control-allow-origin" not in response.headers  # still refused, only said properly
