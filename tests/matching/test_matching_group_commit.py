"""The write path of POST /v1/assignments: group commit, the fast path, the key cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.core.settings import Settings
from app.keys import service as keys_service
from tests.conftest import app_client, make_committed_key
from tests.matching.conftest import fetch, set_state

LAT, LON = 41.1068, 122.9952


async def test_concurrent_requests_share_commits_and_never_share_a_space(
    scratch: Callable[..., Settings],
) -> None:
    settings = scratch(batch_window_ms=0, max_holds_per_driver=100)  # one key, many holds at once
    ids = [r["id"] for r in await fetch(
        settings, "SELECT id FROM spaces ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)", LON, LAT)]
    await set_state(settings, ids[3:], occupied=True)
    await set_state(settings, ids[:3], occupied=False)
    driver = await make_committed_key(settings, "driver")
    async with app_client(settings) as client:
        await client.get("/v1/assignments/00000000-0000-0000-0000-000000000000", headers=driver)  # key known
        answers = await asyncio.gather(*(
            client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver) for _ in range(12)))
    held = [a.json() for a in answers if a.status_code == 201]
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 9
    assert sorted(h["space_id"] for h in held) == sorted(ids[:3])
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"no_free_space"}
    assert set(held[0]) == {"id", "space_id", "facility_id", "lat", "lon", "distance_m", "status", "expires_at"}


async def test_fast_path_leaves_odd_bodies_and_unknown_keys_to_the_route(matching_db: Settings) -> None:
    driver = await make_committed_key(matching_db, "driver")
    async with app_client(matching_db) as client:
        first = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)
        odd = [await client.post("/v1/assignments", json=body, headers=driver) for body in (
            {"lat": LAT, "lon": 181}, {"lat": LAT, "lon": LON, "dest_lat": LAT}, {"lat": LAT, "lon": LON, "ev": "x"},
            {"lat": LAT, "lon": LON, "radius_m": 0}, {"lat": LAT, "lon": LON, "stay_minutes": 20000})]
        wrong = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON},
                                  headers={"Authorization": "Bearer cpk_nope"})
        for created in (first,):
            await client.post(f"/v1/assignments/{created.json()['id']}/cancel", headers=driver)
    assert first.status_code == 201
    assert [r.status_code for r in odd] == [422] * 5
    assert {r.json()["error"] for r in odd} == {"invalid_input"}
    assert wrong.status_code == 401


async def test_a_key_revoked_in_this_process_stops_at_once(matching_db: Settings) -> None:
    admin = await make_committed_key(matching_db, "admin")
    async with app_client(matching_db) as client:
        made = (await client.post("/v1/admin/keys", json={"role": "driver"}, headers=admin)).json()
        driver = {"Authorization": f"Bearer {made['key']}"}
        before = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)
        assert keys_service.cached_principal(made["key"]) is not None
        await client.delete(f"/v1/admin/keys/{made['id']}", headers=admin)
        after = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)
        await client.post(f"/v1/assignments/{before.json()['id']}/cancel", headers=admin)
    assert before.status_code == 201
    assert after.status_code == 401
