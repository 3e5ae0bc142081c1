"""The hot routes answer every request through one handler: the same answer whatever the key
cache, the index or the body's framing, and the contract's error body for anything odd."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.core.settings import Settings
from app.keys import service as keys_service
from tests.conftest import app_client, make_committed_key

LAT, LON = 41.1068, 122.9952  # 站前广场停车场
ODD_BODIES = [
    {"lat": str(LAT), "lon": LON},
    {"lat": LAT, "lon": LON, "accessible": "yes"},
    {"lat": True, "lon": False},
    {"lat": LAT, "lon": LON, "radius_m": "500"},
    {"lat": LAT, "lon": LON, "dest_lat": LAT},
    [LAT, LON],
]


async def test_odd_bodies_are_422_for_an_unknown_and_a_known_key(matching_db: Settings) -> None:
    driver = await make_committed_key(matching_db, "driver")
    async with app_client(matching_db) as client:
        for known in (False, True):
            if not known:
                keys_service._cache.clear()
            else:  # a successful request puts the key in this process's cache
                created = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)
                assert created.status_code == 201
                assert keys_service.cached_principal(driver["Authorization"].split()[1]) is not None
                await client.post(f"/v1/assignments/{created.json()['id']}/cancel", headers=driver)
            for body in ODD_BODIES:
                response = await client.post("/v1/assignments", json=body, headers=driver)
                assert response.status_code == 422, (known, body, response.text)
                assert response.json()["error"] == "invalid_input"
                assert response.json()["detail"].startswith("body"), response.text


async def test_a_body_that_is_not_json_is_415_and_bad_json_422(matching_db: Settings) -> None:
    driver = await make_committed_key(matching_db, "driver")
    async with app_client(matching_db) as client:
        for _ in range(2):  # the second time the key is cached
            plain = await client.post("/v1/assignments", content=f'{{"lat": {LAT}, "lon": {LON}}}',
                                      headers={**driver, "Content-Type": "text/plain"})
            assert plain.status_code == 415, plain.text
            assert plain.json()["error"] == "unsupported_media_type"
            broken = await client.post("/v1/assignments", content=b'{"lat": 41.1, "lon"',
                                       headers={**driver, "Content-Type": "application/json"})
            assert broken.status_code == 422
            assert broken.json() == {"error": "invalid_input", "detail": "body: the body is not a JSON object"}


async def test_a_chunked_body_over_the_limit_is_413_with_the_error_body(matching_db: Settings) -> None:
    driver = await make_committed_key(matching_db, "driver")
    settings = matching_db.model_copy(update={"max_body_bytes": 64})

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"lat": 41.1068, "lon": 122.9952, "padding": "'
        yield b"x" * 200
        yield b'"}'

    async with app_client(settings) as client:
        response = await client.post("/v1/assignments", content=chunks(),
                                     headers={**driver, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_free_spaces_refuses_odd_numbers_and_repeated_parameters(matching_db: Settings) -> None:
    async with app_client(matching_db) as client:
        good = await client.get(f"/v1/spaces/free?lat={LAT}&lon={LON}&limit=3")
        assert good.status_code == 200
        assert len(good.json()) == 3
        for query in (f"lat={LAT}&lon={LON}&limit=%C2%B2", f"lat={LAT}&lon={LON}&limit=%D9%A3",
                      f"lat={LAT}&lon={LON}&limit=" + "1" * 5000, f"lat={LAT}&lat=42&lon={LON}",
                      f"lat={LAT}&lon={LON}&accessible=maybe", f"lat={LAT}&lon={LON}&format=kml"):
            response = await client.get(f"/v1/spaces/free?{query}")
            assert response.status_code == 422, (query, response.text)
            assert response.json()["error"] == "invalid_input"


async def test_position_on_an_ended_assignment_is_409_like_a_second_cancel(matching_db: Settings) -> None:
    driver = await make_committed_key(matching_db, "driver")
    async with app_client(matching_db) as client:
        created = await client.post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=driver)
        url = f"/v1/assignments/{created.json()['id']}"
        assert (await client.post(url + "/cancel", headers=driver)).status_code == 200
        again = await client.post(url + "/cancel", headers=driver)
        moved = await client.post(url + "/position", json={"lat": LAT, "lon": LON}, headers=driver)
        as_text = await client.post(url + "/position", json={"lat": str(LAT), "lon": LON}, headers=driver)
    assert again.status_code == moved.status_code == 409
    assert again.json()["error"] == moved.json()["error"] == "assignment_ended"
    assert as_text.status_code == 422


async def test_the_openapi_description_still_lists_each_hot_route(matching_db: Settings) -> None:
    async with app_client(matching_db) as client:
        spec = (await client.get("/openapi.json")).json()
    free = spec["paths"]["/v1/spaces/free"]["get"]
    assert [p["name"] for p in free["parameters"]] == ["lat", "lon", "bbox", "limit", "radius_m", "accessible", "ev",
                                                       "format", "cursor"]
    assert {"Link", "X-Total-Count"} <= set(free["responses"]["200"]["headers"])  # the Lists rule
    create = spec["paths"]["/v1/assignments"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/AssignmentIn")
    assert create["security"]
    assert {"201", "409", "415", "422"} <= set(create["responses"])
    listing = spec["paths"]["/v1/facilities"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"lat", "lon", "radius_m", "kind", "limit", "format", "q",
                                                          "offset"}
