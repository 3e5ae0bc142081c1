"""OWASP API1 (broken object-level authorisation): operator A never touches operator B's data,
and a driver never sees or changes another driver's assignment — checked by what is refused
and by what is left unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import create_engine
from tests.api.conftest import facility_spaces, set_count, set_spaces
from tests.conftest import app_client, make_committed_key

A, B = "tiedong-city", "shared-parking"


async def b_state(db: AsyncSession) -> dict[str, Any]:
    space = (await facility_spaces(db, "sf-office-lot"))[0]
    row = (await db.execute(text(
        "SELECT st.occupied, st.observed_at, s.id AS sensor, f.name, f.capacity, c.free "
        "FROM space_state st JOIN sensors s ON s.space_id = st.space_id "
        "JOIN facilities f ON f.id = 'sf-office-lot' LEFT JOIN facility_counts c ON c.facility_id = 'lss-counted-lot' "
        "WHERE st.space_id = :s"), {"s": space})).mappings().one()
    return dict(row)


def operator_paths(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    schema = client.app.openapi()  # type: ignore[attr-defined]
    return [(m.upper(), p) for p, item in schema["paths"].items() for m in item if "{operator_id}" in p]


async def test_operator_a_cannot_touch_operator_b_data(client: httpx.AsyncClient, db: AsyncSession, make_key) -> None:  # type: ignore[no-untyped-def]
    key_a = await make_key("operator", A)
    await set_spaces(db, [(await facility_spaces(db, "sf-office-lot"))[0]], occupied=False)
    await set_count(db, "lss-counted-lot", free=50)
    before = await b_state(db)
    now = datetime.now(UTC).isoformat()
    ring = [[122.9968721, 41.1166395], [122.9975279, 41.1166395], [122.9975279, 41.1171605],
            [122.9968721, 41.1171605], [122.9968721, 41.1166395]]
    hijack = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "sf-office-lot", "geometry": {"type": "Polygon", "coordinates": [ring]},
         "properties": {"feature": "facility", "name": "hijacked", "kind": "lot", "capacity": 999}}]}
    steal_sensor = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "a-new-space", "geometry": {"type": "Point", "coordinates": [122.9952, 41.1066]},
         "properties": {"feature": "space", "facility_id": "zqgc-lot", "sensor_id": before["sensor"]}}]}
    attempts = [
        # B's own paths with A's key
        ("POST", f"/v1/operators/{B}/sensors/{before['sensor']}/occupancy", {"occupied": True, "observed_at": now}),
        ("POST", f"/v1/operators/{B}/facilities/lss-counted-lot/count", {"free": 1, "observed_at": now}),
        ("PUT", f"/v1/operators/{B}/inventory", hijack),
        # A's paths naming B's objects
        ("POST", f"/v1/operators/{A}/sensors/{before['sensor']}/occupancy", {"occupied": True, "observed_at": now}),
        ("POST", f"/v1/operators/{A}/facilities/lss-counted-lot/count", {"free": 1, "observed_at": now}),
        ("PUT", f"/v1/operators/{A}/inventory", hijack),
        ("PUT", f"/v1/operators/{A}/inventory", steal_sensor),
    ]
    for method, url, body in attempts:
        response = await client.request(method, url, headers=key_a, json=body)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["error"] == "forbidden"
    assert await b_state(db) == before


async def test_every_operator_endpoint_refuses_another_operators_key(client: httpx.AsyncClient, make_key) -> None:  # type: ignore[no-untyped-def]
    key_b = await make_key("operator", B)
    paths = operator_paths(client)
    assert len(paths) >= 3
    for method, path in paths:
        url = path.format(operator_id=A, sensor_id="any", facility_id="any")
        response = await client.request(method, url, headers=key_b, json={})
        assert response.status_code == 403, (method, url, response.text)


async def test_a_driver_never_sees_another_drivers_assignment(fresh_db) -> None:  # type: ignore[no-untyped-def]
    settings = await fresh_db()  # committed: the matching engine reads with its own sessions
    engine = create_engine(settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE space_state SET occupied = false, observed_at = now(), since = now(), "
                                "last_seen = now() WHERE space_id LIKE 'zqgc-lot-%'"))
    await engine.dispose()
    alice, bob = await make_committed_key(settings, "driver"), await make_committed_key(settings, "driver")
    async with app_client(settings) as client:
        created = await client.post("/v1/assignments", headers=alice, json={"lat": 41.1066, "lon": 122.9952})
        assert created.status_code == 201, created.text
        aid = created.json()["id"]
        for method, suffix, body in (("GET", "", None), ("POST", "/cancel", None),
                                     ("POST", "/position", {"lat": 41.1066, "lon": 122.9952}),
                                     ("GET", "/events", None)):
            response = await client.request(method, f"/v1/assignments/{aid}{suffix}", headers=bob, json=body)
            assert response.status_code == 404, (suffix, response.text)
            assert "space_id" not in response.text
        mine = await client.get(f"/v1/assignments/{aid}", headers=alice)
        assert mine.status_code == 200
        assert mine.json()["status"] == "held"
