"""The facility snapshot cache and the fast path that serves the hot query from it."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.facility_cache import FastPath
from tests.api.conftest import facility_spaces, set_spaces

QUERIES = [
    "lat=41.112&lon=122.997",
    "lat=41.112&lon=122.997&radius_m=800&kind=curb&limit=5",
    "lon=122.99&lat=41.11&radius_m=5000&limit=500&format=json",
    "lat=41.1064856&lon=122.9952&radius_m=1e3&kind=lot",
]
FALL_THROUGH = [
    "", "lat=41.1", "lat=91&lon=122.99", "lat=nan&lon=122.99", "lat=41.1&lon=122.99&radius_m=0",
    "lat=41.1&lon=122.99&radius_m=9000", "lat=41.1&lon=122.99&limit=0", "lat=41.1&lon=122.99&limit=2.5",
    "lat=41.1&lon=122.99&kind=boat", "lat=41.1&lon=122.99&format=geojson", "lat=41.1&lon=122.99&x=1",
    "lat=41.1&lat=41.2&lon=122.99", "lat=%2041.1&lon=122.99", "lat=inf&lon=1",
]


async def test_fast_path_answers_exactly_as_the_route(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await set_spaces(db, await facility_spaces(db, "s219-00"), occupied=False)
    cache = client.app.state.facility_cache  # type: ignore[attr-defined]
    via_route = {q: (await client.get(f"/v1/facilities?{q}")).content for q in QUERIES}
    cache.ttl_s = 3600  # from here on the snapshot stays fresh: the fast path answers
    await client.get("/v1/facilities?limit=1")
    await set_spaces(db, await facility_spaces(db, "s219-00"), occupied=True)  # not seen until refreshed
    for q in QUERIES:
        response = await client.get(f"/v1/facilities?{q}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == via_route[q], q
    cache.invalidate()
    s219 = next(f for f in (await client.get(f"/v1/facilities?{QUERIES[2]}")).json() if f["id"] == "s219-00")
    assert s219["free"] == 0


class Downstream:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1


@pytest.mark.parametrize("query", FALL_THROUGH)
async def test_anything_unusual_falls_through_to_the_route(client: httpx.AsyncClient, query: str) -> None:
    cache = client.app.state.facility_cache  # type: ignore[attr-defined]
    cache.ttl_s = 3600
    await client.get("/v1/facilities?limit=1")
    downstream = Downstream()
    fast = FastPath(downstream, cache=cache, settings=client.app.state.settings)  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/facilities", "query_string": query.encode()}
    await fast(scope, None, send)
    assert (downstream.calls, sent) == (1, [])
    await fast({**scope, "query_string": QUERIES[0].encode()}, None, send)
    assert downstream.calls == 1
    assert sent[0]["status"] == 200
    assert isinstance(orjson.loads(sent[1]["body"]), list)
