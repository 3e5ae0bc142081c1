"""Nearest free spaces — from the in-memory index and from PostGIS — against brute force."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.assignments import eligibility as matching_eligibility
from app.assignments import service
from app.core.db import create_engine
from app.core.settings import Settings
from tests.conftest import app_client, make_committed_key, poll
from tests.matching.conftest import fetch, set_state

R = 6_371_008.8


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


@pytest.fixture(scope="module")
async def mixed_db(fresh_db: Callable[..., Any]) -> Settings:
    """Spaces at random: free, occupied, stale-free or unknown; some held by a driver."""
    settings: Settings = await fresh_db(batch_window_ms=0)
    rng = random.Random(4)
    ids = [r["id"] for r in await fetch(settings, "SELECT id FROM spaces ORDER BY id")]
    kinds = {sid: rng.choice(["free", "free", "occupied", "stale", "unknown"]) for sid in ids}
    await set_state(settings, [s for s, k in kinds.items() if k == "free"], occupied=False)
    await set_state(settings, [s for s, k in kinds.items() if k == "occupied"], occupied=True)
    await set_state(settings, [s for s, k in kinds.items() if k == "stale"], occupied=False,
                    age_s=settings.stale_after_s + 60)
    return settings


async def _brute_force(settings: Settings, lat: float, lon: float, limit: int,
                       radius: float) -> list[tuple[str, float]]:
    rows = await fetch(settings, """
        SELECT s.id, s.facility_id, ST_Y(s.geom) lat, ST_X(s.geom) lon FROM spaces s
        JOIN space_state st ON st.space_id = s.id
        WHERE st.occupied IS FALSE AND st.last_seen > now() - make_interval(secs => $1) AND NOT s.no_parking
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.space_id = s.id
                          AND a.status IN ('held', 'reassigned') AND upper(a.hold) > now())""",
        float(settings.stale_after_s))
    el = await _eligibility(settings)
    near = [(r["id"], _haversine(lat, lon, r["lat"], r["lon"])) for r in rows
            if r["facility_id"] not in el.closed and r["id"] not in el.blocked_spaces]
    return sorted((p for p in near if p[1] <= radius), key=lambda p: p[1])[:limit]


async def _eligibility(settings: Settings) -> matching_eligibility.Eligibility:
    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await matching_eligibility.load(conn, datetime.now(ZoneInfo(settings.timezone)))
    finally:
        await engine.dispose()


def _points(settings: Settings, n: int) -> list[tuple[float, float]]:
    rng = random.Random(11)
    return [(rng.uniform(41.100, 41.122), rng.uniform(122.985, 123.010)) for _ in range(n)]


async def test_index_and_postgis_agree_with_brute_force(mixed_db: Settings) -> None:
    driver = await make_committed_key(mixed_db, "driver")
    async with app_client(mixed_db) as client:
        held = await client.post("/v1/assignments", json={"lat": 41.1068, "lon": 122.9952}, headers=driver)
        assert held.status_code == 201
        runtime = client.app.state.matching  # type: ignore[attr-defined]
        await poll(lambda: runtime.ready and held.json()["space_id"] not in _index_ids(runtime), timeout=10)
        answered = 0
        for lat, lon in _points(mixed_db, 25):
            expected = await _brute_force(mixed_db, lat, lon, 10, 800)
            answered += bool(expected)
            got = (await client.get("/v1/spaces/free", params={"lat": lat, "lon": lon, "radius_m": 800})).json()
            from_sql = await _sql(client, lat, lon)
            # "no" is left to the FastAPI route by the fast path: both must answer the same
            routed = (await client.get("/v1/spaces/free", params={"lat": lat, "lon": lon, "radius_m": 800,
                                                                  "ev": "no"})).json()
            assert routed == got
            assert [g["space_id"] for g in got] == [e[0] for e in expected]
            assert [g["distance_m"] for g in got] == pytest.approx([e[1] for e in expected], abs=0.1)
            assert [g["space_id"] for g in from_sql] == [e[0] for e in expected]
            assert [g["distance_m"] for g in from_sql] == pytest.approx([e[1] for e in expected], abs=0.1)
        await client.post(f"/v1/assignments/{held.json()['id']}/cancel", headers=driver)
    assert answered >= 10  # most points have free spaces in reach: the comparison is not vacuous


def _index_ids(runtime: Any) -> set[str]:
    rows = runtime.free_spaces(lat=41.1068, lon=122.9952, limit=100, radius_m=300)
    return {r["space_id"] for r in rows or []}


async def _sql(client: Any, lat: float, lon: float) -> list[dict[str, Any]]:
    state = client.app.state
    async with state.sessionmaker() as session:
        eligibility = await state.matching.eligibility.get(session)
        query = service.AssignmentRequest(lat, lon, radius_m=800)
        return await service.free_spaces_sql(session, query, limit=10, settings=state.settings,
                                             eligibility=eligibility)


async def test_geojson_and_filters(mixed_db: Settings) -> None:
    async with app_client(mixed_db) as client:
        await poll(lambda: client.app.state.matching.ready, timeout=10)  # type: ignore[attr-defined]
        params = {"lat": 41.1068, "lon": 122.9952, "radius_m": 1500, "limit": 20}
        fc = (await client.get("/v1/spaces/free", params={**params, "format": "geojson"})).json()
        accessible = (await client.get("/v1/spaces/free", params={**params, "accessible": "true"})).json()
    flags = {r["id"]: r["accessible"] for r in await fetch(mixed_db, "SELECT id, accessible FROM spaces")}
    assert fc["type"] == "FeatureCollection"
    assert fc["features"]
    assert all(f["geometry"]["type"] == "Point" for f in fc["features"])
    assert accessible
    assert all(flags[r["space_id"]] for r in accessible)
