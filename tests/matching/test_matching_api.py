"""The driver API end to end on a real PostGIS: validation, holds, cancel, expiry, counted lots."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from matching.geo import haversine_m
from tests.conftest import app_client, make_committed_key, poll
from tests.matching.conftest import fetch, set_state

LAT, LON = 41.1068, 122.9952  # 站前广场停车场


async def _lonely_space(settings: Settings) -> str:
    """Occupy every space but the one nearest (LAT, LON); return that one."""
    rows = await fetch(settings, "SELECT id FROM spaces ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)",
                       LON, LAT)
    ids = [r["id"] for r in rows]
    await set_state(settings, ids[1:], occupied=True)
    await set_state(settings, ids[:1], occupied=False)
    return ids[0]


async def test_bad_input_is_a_clear_4xx(matching_db: Settings) -> None:
    driver = await make_committed_key(matching_db, "driver")
    async with app_client(matching_db) as client:
        cases = [
            await client.get("/v1/spaces/free", params={"lat": 91, "lon": LON}),
            await client.get("/v1/spaces/free", params={"lat": LAT, "lon": LON, "radius_m": 10**6}),
            await client.get("/v1/spaces/free", params={"lat": LAT, "lon": LON, "limit": 0}),
            await client.post("/v1/assignments", json={"lat": LAT, "lon": 200}, headers=driver),
            await client.post("/v1/assignments", json={"lat": LAT, "lon": LON, "dest_lat": LAT}, headers=driver),
        ]
        unauthenticated = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON})
    assert [r.status_code for r in cases] == [422] * 5
    assert {r.json()["error"] for r in cases} == {"invalid_input"}
    assert unauthenticated.status_code == 401


async def test_only_drivers_assign_and_see_only_their_own(matching_db: Settings) -> None:
    me, other = await make_committed_key(matching_db, "driver"), await make_committed_key(matching_db, "driver")
    operator = await make_committed_key(matching_db, "operator", "tiedong-city")
    async with app_client(matching_db) as client:
        created = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=me)
        url = f"/v1/assignments/{created.json()['id']}"
        mine, theirs = await client.get(url, headers=me), await client.get(url, headers=other)
        by_operator = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=operator)
        await client.post(url + "/cancel", headers=me)
    assert created.status_code == 201
    assert created.json()["status"] == "held"
    assert mine.json()["space_id"] == created.json()["space_id"]
    assert theirs.status_code == 404
    assert by_operator.status_code == 403


async def test_nothing_in_reach_is_409_no_free_space(scratch: Callable[..., Settings]) -> None:
    settings = scratch(batch_window_ms=0)
    driver = await make_committed_key(settings, "driver")
    async with app_client(settings) as client:
        response = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)
    assert response.status_code == 409
    assert response.json()["error"] == "no_free_space"


async def test_a_held_space_leaves_the_free_list_and_comes_back_on_cancel(scratch: Callable[..., Settings]) -> None:
    settings = scratch(batch_window_ms=0)
    lonely = await _lonely_space(settings)
    driver = await make_committed_key(settings, "driver")
    params = {"lat": LAT, "lon": LON, "limit": 5}
    async with app_client(settings) as client:
        await poll(lambda: _free_ids(client, params), timeout=10)
        held = (await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)).json()
        assert await poll(lambda: _free_ids(client, params, expect=[]), timeout=10)
        cancelled = await client.post(f"/v1/assignments/{held['id']}/cancel", headers=driver)
        assert await poll(lambda: _free_ids(client, params, expect=[lonely]), timeout=10)
        again = await client.post(f"/v1/assignments/{held['id']}/cancel", headers=driver)
    assert held["space_id"] == lonely
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409


async def _free_ids(client: httpx.AsyncClient, params: dict[str, Any], expect: list[str] | None = None) -> Any:
    ids = [r["space_id"] for r in (await client.get("/v1/spaces/free", params=params)).json()]
    return ids if expect is None else ids == expect


async def test_with_a_destination_spaces_are_sought_around_it(matching_db: Settings) -> None:
    """A driver 520 m away asks for a space within 150 m of where they are going: the radius and
    the candidates are the destination's; ``distance_m`` is still from the driver."""
    driver = await make_committed_key(matching_db, "driver")
    far = (LAT + 0.0047, LON)
    body = {"lat": far[0], "lon": far[1], "dest_lat": LAT, "dest_lon": LON, "radius_m": 150}
    async with app_client(matching_db) as client:
        held = await client.post("/v1/assignments", json=body, headers=driver)
        await client.post(f"/v1/assignments/{held.json()['id']}/cancel", headers=driver)
    got = held.json()
    assert held.status_code == 201
    assert haversine_m(LAT, LON, got["lat"], got["lon"]) <= 150
    assert got["distance_m"] == pytest.approx(haversine_m(*far, got["lat"], got["lon"]), abs=0.1)
    assert got["distance_m"] > 350


async def test_times_are_written_alike_on_every_path(matching_db: Settings) -> None:
    """The route (a key not yet cached), the fast path, GET and the SSE stream all write UTC
    times the same way (``…Z``), so a client never sees two formats for one field."""
    driver = await make_committed_key(matching_db, "driver")
    async with app_client(matching_db.model_copy(update={"max_holds_per_driver": 2})) as client:  # two holds
        by_route = (await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)).json()
        by_fast_path = (await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)).json()
        url = f"/v1/assignments/{by_route['id']}"
        await client.post(url + "/cancel", headers=driver)
        await client.post(f"/v1/assignments/{by_fast_path['id']}/cancel", headers=driver)
        got = (await client.get(url, headers=driver)).json()
        stream = (await client.get(url + "/events", headers=driver)).text  # ends: cancelled is final
    event = json.loads(next(line[6:] for line in stream.splitlines() if line.startswith("data: ")))
    times = [by_route["expires_at"], by_fast_path["expires_at"], got["expires_at"], got["updated_at"],
             event["expires_at"], event["updated_at"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", t) for t in times), times
    assert (event["expires_at"], event["updated_at"]) == (got["expires_at"], got["updated_at"])


async def test_a_hold_expires(scratch: Callable[..., Settings]) -> None:
    settings = scratch(batch_window_ms=0, hold_seconds=1)
    driver = await make_committed_key(settings, "driver")
    await _lonely_space(settings)
    async with app_client(settings) as client:
        held = (await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)).json()

        async def expired() -> bool:
            got = await client.get(f"/v1/assignments/{held['id']}", headers=driver)
            return got.json()["status"] == "expired"

        assert await poll(expired, timeout=10)
        second = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)
    assert second.json()["space_id"] == held["space_id"]


async def test_counted_lot_holds_are_bounded_by_its_free_count(scratch: Callable[..., Settings]) -> None:
    settings = scratch(batch_window_ms=0, max_holds_per_driver=100)  # one key, several holds
    garage = (await fetch(settings, "SELECT id, ST_Y(entrance) lat, ST_X(entrance) lon FROM facilities "
                                    "WHERE counted AND capacity > 0 ORDER BY id LIMIT 1"))[0]
    await _count(settings, garage["id"], free=2)
    driver = await make_committed_key(settings, "driver")
    body = {"lat": garage["lat"], "lon": garage["lon"], "radius_m": 30}
    async with app_client(settings) as client:
        answers = await asyncio.gather(*(client.post("/v1/assignments", json=body, headers=driver) for _ in range(5)))
    held = [a.json() for a in answers if a.status_code == 201]
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409, 409]
    assert {(h["space_id"], h["facility_id"]) for h in held} == {(None, garage["id"])}


async def _count(settings: Settings, facility_id: str, free: int) -> None:
    await fetch(settings, """INSERT INTO facility_counts (facility_id, free, observed_at, last_seen, source)
                             VALUES ($1, $2, now(), now(), 'test') ON CONFLICT (facility_id)
                             DO UPDATE SET free = $2, observed_at = now(), last_seen = now()""",
                facility_id, free)
