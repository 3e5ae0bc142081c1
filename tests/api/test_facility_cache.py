"""The facility snapshot cache behind ``GET /v1/facilities``, and the list's one strict parser."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api.conftest import facility_spaces, set_spaces

QUERIES = [
    "lat=41.112&lon=122.997",
    "lat=41.112&lon=122.997&radius_m=800&kind=curb&limit=5",
    "lon=122.99&lat=41.11&radius_m=5000&limit=500&format=json",
    "lat=41.1064856&lon=122.9952&radius_m=1e3&kind=lot",
]
REFUSED = [
    "lat=41.1", "lat=91&lon=122.99", "lat=nan&lon=122.99", "lat=41.1&lon=122.99&radius_m=0",
    "lat=41.1&lon=122.99&radius_m=9000", "lat=41.1&lon=122.99&limit=0", "lat=41.1&lon=122.99&limit=2.5",
    "lat=41.1&lon=122.99&kind=boat", "lat=41.1&lat=41.2&lon=122.99", "lat=inf&lon=1",
    "lat=41.1&lon=122.99&limit=%C2%B2", "lat=%D9%A4%D9%A1&lon=122.99", "lat=41.1&lon=122.99&limit=" + "7" * 5000,
]


async def test_a_fresh_snapshot_answers_until_it_is_invalidated(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await set_spaces(db, await facility_spaces(db, "s219-00"), occupied=False)
    cache = client.app.state.facility_cache  # type: ignore[attr-defined]
    first = {q: (await client.get(f"/v1/facilities?{q}")).content for q in QUERIES}
    cache.ttl_s = 3600  # from here on the snapshot stays fresh
    await client.get("/v1/facilities?limit=1")
    await set_spaces(db, await facility_spaces(db, "s219-00"), occupied=True)  # not seen until refreshed
    for q in QUERIES:
        response = await client.get(f"/v1/facilities?{q}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == first[q], q
    cache.invalidate()
    s219 = next(f for f in (await client.get(f"/v1/facilities?{QUERIES[2]}")).json() if f["id"] == "s219-00")
    assert s219["free"] == 0


@pytest.mark.parametrize("query", REFUSED)
async def test_every_odd_query_is_a_422_whether_or_not_the_snapshot_is_fresh(
        client: httpx.AsyncClient, query: str) -> None:
    cache = client.app.state.facility_cache  # type: ignore[attr-defined]
    for ttl in (0, 3600):
        cache.ttl_s = ttl
        await client.get("/v1/facilities?limit=1")
        response = await client.get(f"/v1/facilities?{query}")
        assert response.status_code == 422, (query, ttl, response.text[:200])
        assert response.json()["error"] == "invalid_input"
        assert response.json()["detail"]
