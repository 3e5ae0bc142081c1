"""Admin rule management: create, list, delete; zones apply to detection; bad input is 422."""

from __future__ import annotations

import pytest

from app.enforcement import violations as violations_service
from tests.enforcement.helpers import add_events, at, detect, space_position, stored

SPACE = "td-hospital-lot-010"


def square(lat: float, lon: float, half: float = 0.0002) -> dict:  # type: ignore[type-arg]
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return {"type": "Polygon", "coordinates": [ring]}


async def test_admin_manages_rules_and_a_zone_rule_applies(client, db, db_settings, make_key) -> None:  # type: ignore[no-untyped-def]
    headers = await make_key("admin")
    lat, lon = await space_position(db, SPACE)
    body = {"zone": square(lat, lon), "no_parking": True, "days": "Mo-Fr", "from": "22:00", "to": "06:00",
            "note": "fire lane at night"}
    created = await client.post("/v1/admin/rules", json=body, headers=headers)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["kind"], rule["from"], rule["to"], rule["days"]) == ("no_parking", "22:00", "06:00", "Mo-Fr")
    assert rule["zone"]["type"] == "Polygon"
    listed = (await client.get("/v1/admin/rules?kind=no_parking", headers=headers)).json()
    assert rule["id"] in [r["id"] for r in listed]
    rules = await violations_service.load_rules(db, space_ids=[SPACE])
    assert rule["id"] in [r.id for r in rules[SPACE]]
    await add_events(db, SPACE, [(at(0, 23), True), (at(1, 1), False)])
    await detect(db, db_settings, SPACE, now=at(2, 0))
    assert [(v["kind"], v["rule_id"], v["started_at"]) for v in await stored(db, SPACE)] == [
        ("no_parking", rule["id"], at(0, 23, 5))]
    assert (await client.delete(f"/v1/admin/rules/{rule['id']}", headers=headers)).status_code == 204
    assert (await client.get(f"/v1/admin/rules/{rule['id']}", headers=headers)).status_code == 404
    [kept] = await stored(db, SPACE)  # past violations stay; their rule is gone
    assert kept["rule_id"] is None


async def test_space_and_facility_rules(client, make_key) -> None:  # type: ignore[no-untyped-def]
    headers = await make_key("admin")
    made = await client.post("/v1/admin/rules", headers=headers, json={
        "space_id": "s219-03-011", "max_stay_minutes": 15, "days": "Mo-Su", "from": "00:00", "to": "24:00"})
    assert made.status_code == 201, made.text
    assert (made.json()["to"], made.json()["max_stay_minutes"]) == ("24:00", 15)
    of_facility = (await client.get("/v1/admin/rules?facility_id=s219-03", headers=headers)).json()
    assert [(r["kind"], r["max_stay_minutes"], r["days"]) for r in of_facility] == [("time_limit", 120, "Mo-Sa")]


@pytest.mark.parametrize("body", [
    {"facility_id": "s219-03", "space_id": "s219-03-001", "max_stay_minutes": 60},
    {"facility_id": "s219-03"},
    {"facility_id": "s219-03", "max_stay_minutes": 60, "no_parking": True},
    {"facility_id": "nowhere", "max_stay_minutes": 60},
    {"facility_id": "s219-03", "max_stay_minutes": 60, "days": "Mon-Fri"},
    {"facility_id": "s219-03", "max_stay_minutes": 60, "from": "25:00"},
    {"facility_id": "s219-03", "max_stay_minutes": 60, "timezone": "Mars/Olympus"},
    {"zone": {"type": "Point", "coordinates": [123, 41]}, "no_parking": True},
])
async def test_bad_rules_are_422(client, make_key, body) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/admin/rules", json=body, headers=await make_key("admin"))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("enforcement", 403), ("driver", 403)])
async def test_only_admins_manage_rules(client, make_key, role, status) -> None:  # type: ignore[no-untyped-def]
    headers = {} if role is None else await make_key(role)
    assert (await client.get("/v1/admin/rules", headers=headers)).status_code == status
    response = await client.post("/v1/admin/rules", headers=headers,
                                 json={"facility_id": "s219-03", "max_stay_minutes": 60})
    assert response.status_code == status
