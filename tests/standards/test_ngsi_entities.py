"""NGSI-LD entities on the demo district: every entity valid against its Smart Data Models
schema, query semantics (q, geo, id, idPattern, attrs) against brute force over the full
listing, pagination that sees each entity exactly once, content negotiation and errors."""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

import httpx
import pytest
from shapely.geometry import Polygon, shape
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.standards.conftest import ENTITY_TYPES, NGSI, key_values_of

LON, LAT = 122.997, 41.112


@pytest.fixture
async def live(db: AsyncSession) -> None:
    """A mixed live state: random free/occupied, some never reported, some stale (rolled back)."""
    await db.execute(text(
        "UPDATE space_state SET occupied = (random() < 0.5), observed_at = now(), since = now(), last_seen = now()"))
    await db.execute(text("UPDATE space_state SET occupied = NULL, last_seen = NULL "
                          "WHERE space_id IN (SELECT space_id FROM space_state ORDER BY space_id LIMIT 40)"))
    await db.execute(text("UPDATE space_state SET last_seen = now() - interval '10 days' "
                          "WHERE space_id IN (SELECT space_id FROM space_state ORDER BY space_id DESC LIMIT 40)"))


async def everything(client: httpx.AsyncClient, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every entity by following rel="next" (key-values)."""
    url: str | None = NGSI
    query: dict[str, Any] | None = {"options": "keyValues", "limit": 1000, **(params or {})}
    out: list[dict[str, Any]] = []
    while url:
        r = await client.get(url, params=query)
        assert r.status_code == 200, r.text
        out += r.json()
        url, query = _next(r), None
    return out


def _next(response: httpx.Response) -> str | None:
    for part in response.headers.get("link", "").split(","):
        match = re.match(r'\s*<([^>]+)>;\s*rel="next"', part)
        if match:
            return match.group(1)
    return None


async def test_every_entity_validates_against_its_schema(client: httpx.AsyncClient, live: None,
                                                         validators: dict[str, Any]) -> None:
    seen: dict[str, int] = {}
    for normalized in (False, True):
        params = {"limit": 1000} if normalized else {"limit": 1000, "options": "keyValues"}
        url: str | None = NGSI
        query: dict[str, Any] | None = params
        while url:
            r = await client.get(url, params=query)
            for entity in r.json():
                body = key_values_of(entity) if normalized else entity
                errors = list(validators[body["type"]].iter_errors(body))
                assert not errors, (body["id"], [e.message for e in errors[:3]])
                seen[body["type"]] = seen.get(body["type"], 0) + 1
            url, query = _next(r), None
    assert set(seen) == set(ENTITY_TYPES)


async def test_live_attributes_and_stale_spots(client: httpx.AsyncClient, live: None, db: AsyncSession) -> None:
    rows = (await db.execute(text(
        "SELECT s.id, st.occupied, st.last_seen > now() - interval '1 hour' AS fresh, s.no_parking, f.closed "
        "FROM spaces s JOIN facilities f ON f.id = s.facility_id JOIN space_state st ON st.space_id = s.id"))).all()
    expected = {}
    for sid, occupied, fresh, no_parking, closed in rows:
        expected[f"urn:ngsi-ld:ParkingSpot:{sid}"] = (
            "closed" if no_parking or closed else "unknown" if occupied is None or not fresh
            else "occupied" if occupied else "free")
    spots = {e["id"]: e["status"] for e in await everything(client, {"type": "ParkingSpot"})}
    assert spots == expected
    assert "unknown" in spots.values()
    r = await client.get(f"{NGSI}/urn:ngsi-ld:ParkingSpot:{rows[0][0]}")
    status = r.json()["status"]
    assert status["type"] == "Property"
    assert ("observedAt" in status) == (rows[0][1] is not None)
    facilities = {e["id"]: e for e in await everything(client, {"type": "OffStreetParking,OnStreetParking"})}
    items = (await client.get("/v1/facilities", params={"lat": LAT, "lon": LON, "radius_m": 5000,
                                                         "limit": 100})).json()
    assert len(items) == len(facilities)
    for item in items:
        kind = "OnStreetParking" if item["kind"] == "curb" else "OffStreetParking"
        entity = facilities[f"urn:ngsi-ld:{kind}:{item['id']}"]
        assert entity.get("availableSpotNumber") == item["free"]


def _haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


Q_CASES: list[tuple[str, Any]] = [
    ('status=="free"', lambda e: e.get("status") == "free"),
    ('status!="free"', lambda e: "status" in e and e["status"] != "free"),
    ("availableSpotNumber>5", lambda e: isinstance(e.get("availableSpotNumber"), int) and e["availableSpotNumber"] > 5),
    ("totalSpotNumber<10", lambda e: isinstance(e.get("totalSpotNumber"), int) and e["totalSpotNumber"] < 10),
    ('status=="free";refParkingSite=="urn:ngsi-ld:OnStreetParking:s219-01"',
     lambda e: e.get("status") == "free" and e.get("refParkingSite") == "urn:ngsi-ld:OnStreetParking:s219-01"),
    ('status=="unknown"|availableSpotNumber==0',
     lambda e: e.get("status") == "unknown" or e.get("availableSpotNumber") == 0),
    ('category=="onlyDisabled"', lambda e: "onlyDisabled" in e.get("category", [])),
    ('status=="full","almostFull"', lambda e: bool({"full", "almostFull"} & set(_list(e.get("status"))))),
    ("availableSpotNumber==1..3", lambda e: isinstance(e.get("availableSpotNumber"), int)
     and 1 <= e["availableSpotNumber"] <= 3),
    ("openingHours", lambda e: "openingHours" in e),
]


async def test_q_against_brute_force(client: httpx.AsyncClient, live: None) -> None:
    all_entities = await everything(client)
    for q, keep in Q_CASES:
        expected = sorted(e["id"] for e in all_entities if keep(e))
        found = await everything(client, {"q": q})
        assert sorted(e["id"] for e in found) == expected, q
        r = await client.get(NGSI, params={"q": q, "count": "true", "limit": 0})
        assert int(r.headers["NGSILD-Results-Count"]) == len(expected), q


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


async def test_geo_queries_against_brute_force(client: httpx.AsyncClient, live: None) -> None:
    spots = await everything(client, {"type": "ParkingSpot"})
    rng = random.Random(7)
    for _ in range(4):
        lon, lat = rng.choice(spots)["location"]["coordinates"]
        radius = rng.choice([80, 250, 600])
        found = await everything(client, {"type": "ParkingSpot", "georel": f"near;maxDistance=={radius}",
                                          "geometry": "Point", "coordinates": json.dumps([lon, lat])})
        distances = [_haversine(lon, lat, *e["location"]["coordinates"]) for e in found]
        # near answers nearest first (spheroid there, sphere here: equal within a metre)
        assert all(a <= b + 1.0 for a, b in zip(distances, distances[1:], strict=False))
        got = {e["id"] for e in found}
        for e in spots:
            d = _haversine(lon, lat, *e["location"]["coordinates"])
            if abs(d - radius) > 1.0:  # spheroid vs sphere: leave the boundary metre out
                assert (e["id"] in got) == (d < radius), (e["id"], d)
    box = Polygon([(122.99, 41.105), (123.0, 41.105), (123.0, 41.115), (122.99, 41.115), (122.99, 41.105)])
    coords = json.dumps([list(map(list, box.exterior.coords))])
    everything_ = await everything(client)
    for georel, test in (("within", lambda g: g.within(box)), ("intersects", lambda g: g.intersects(box))):
        found = {e["id"] for e in await everything(client, {"georel": georel, "geometry": "Polygon",
                                                           "coordinates": coords})}
        expected = {e["id"] for e in everything_ if test(shape(e["location"]))}
        assert found == expected
        assert found


async def test_paging_sees_every_entity_once(client: httpx.AsyncClient, live: None, db: AsyncSession) -> None:
    spaces = (await db.execute(text("SELECT count(*) FROM spaces"))).scalar_one()
    facilities = (await db.execute(text("SELECT count(*) FROM facilities"))).scalar_one()
    groups = (await db.execute(text(
        "SELECT count(DISTINCT (facility_id, g)) FROM spaces, LATERAL (VALUES ('a', accessible), ('e', ev), "
        "('l', loading)) AS x(g, flag) WHERE flag AND NOT no_parking"))).scalar_one()
    ids: list[str] = []
    url: str | None = NGSI
    query: dict[str, Any] | None = {"limit": 331, "count": "true", "attrs": "name"}
    pages = 0
    while url:
        r = await client.get(url, params=query)
        assert int(r.headers["NGSILD-Results-Count"]) == spaces + facilities + groups
        if pages:
            assert 'rel="prev"' in r.headers["link"]
        ids += [e["id"] for e in r.json()]
        assert all(set(e) <= {"id", "type", "name"} for e in r.json())
        url, query, pages = _next(r), None, pages + 1
    assert len(ids) == len(set(ids)) == spaces + facilities + groups
    q_ids = [e["id"] for e in await everything(client, {"q": 'status=="free"', "limit": 13})]
    assert len(q_ids) == len(set(q_ids))


async def test_ids_patterns_and_formats(client: httpx.AsyncClient, live: None) -> None:
    spots = await everything(client, {"type": "ParkingSpot"})
    some = [e["id"] for e in spots[:3]]
    r = await client.get(NGSI, params={"id": ",".join(some), "options": "keyValues"})
    assert sorted(e["id"] for e in r.json()) == sorted(some)
    found = await everything(client, {"idPattern": "^urn:ngsi-ld:ParkingSpot:s219-"})
    assert {e["id"] for e in found} == {e["id"] for e in spots if e["id"].startswith("urn:ngsi-ld:ParkingSpot:s219-")}
    assert found
    r = await client.get(NGSI, params={"type": "ParkingSpot", "limit": 2}, headers={"Accept": "application/ld+json"})
    assert r.headers["content-type"].startswith("application/ld+json")
    context_url = r.json()[0]["@context"]
    context = await client.get(context_url.replace("http://test", ""))
    assert context.status_code == 200
    assert "@context" in context.json()
    for name in context.json()["@context"]:
        assert (await client.get(name.replace("http://test", ""))).status_code == 200
    r = await client.get(NGSI, params={"type": "ParkingSpot", "limit": 2}, headers={"Accept": "application/json"})
    assert "@context" not in r.json()[0]
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in r.headers["link"]
    r = await client.get(NGSI, params={"type": "ParkingSpot", "limit": 2}, headers={"Accept": "application/geo+json"})
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["features"][0]["geometry"]["type"] == "Point"
    r = await client.get(f"{NGSI}/{some[0]}", params={"options": "keyValues"})
    assert r.json()["id"] == some[0]
    types = (await client.get("/ngsi-ld/v1/types")).json()
    assert types["typeList"] == list(ENTITY_TYPES)


@pytest.mark.parametrize("params", [
    {"q": 'status=="free'}, {"q": "(status"}, {"q": "status~=("}, {"limit": "-1"}, {"limit": "x"},
    {"limit": "100000"}, {"georel": "near;maxDistance==10", "geometry": "Point"},
    {"georel": "near;maxDistance==10", "geometry": "Polygon", "coordinates": "[[[1,2],[3,4],[5,6],[1,2]]]"},
    {"georel": "within", "geometry": "Polygon", "coordinates": "[[[1,2],[3,4],[1,2]]]"},
    {"georel": "within", "geometry": "Point", "coordinates": "[200, 1]"},
    {"georel": "sideways", "geometry": "Point", "coordinates": "[1, 1]"},
    {"idPattern": "("}, {"options": "sideways"}, {"id": "not-a-uri"},
])
async def test_bad_queries_are_problem_details(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    r = await client.get(NGSI, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] in ("https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
                            "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest")
    assert body["error"]
    assert body["detail"]
    assert body["status"] == 400


async def test_not_found_not_acceptable_and_writes(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{NGSI}/urn:ngsi-ld:ParkingSpot:nope")
    assert r.status_code == 404
    assert r.json()["type"].endswith("/ResourceNotFound")
    r = await client.get(NGSI, headers={"Accept": "text/csv"})
    assert r.status_code == 406
    for method, path in (("POST", NGSI), ("PATCH", f"{NGSI}/urn:ngsi-ld:ParkingSpot:x/attrs"),
                         ("DELETE", f"{NGSI}/urn:ngsi-ld:ParkingSpot:x"),
                         ("POST", "/ngsi-ld/v1/entityOperations/upsert")):
        r = await client.request(method, path, json={"id": "urn:x:y", "type": "ParkingSpot"})
        assert r.status_code == 405, (method, path)
        assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/OperationNotSupported"
