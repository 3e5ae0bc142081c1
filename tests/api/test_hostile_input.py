"""Issue 18, input that must not break it: NUL characters, bad UTF-8, repeated parameters, loose
types, 3-D coordinates, ids the rest of the system cannot use, geometries outside the service
area or of implausible size, CSV formula injection, the grammar of refusals."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import input_guard
from app.core.csv_export import rows_to_csv, safe_cell
from tests.api.conftest import facility_spaces, set_spaces

RING = [[122.99, 41.11], [122.991, 41.11], [122.991, 41.111], [122.99, 41.111], [122.99, 41.11]]


def lot(fid: str = "h-lot", ring: list[list[float]] | None = None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Polygon", "coordinates": [ring or RING]},
            "properties": {"feature": "facility", "name": "测试停车场", "kind": "lot", "capacity": 2, **props}}


def space(sid: str, sensor: str | None = None, coords: list[float] | None = None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": sid, "geometry": {"type": "Point", "coordinates": coords or [122.9902, 41.1101]},
            "properties": {"feature": "space", "facility_id": "h-lot", "sensor_id": sensor or f"s-{sid}", **props}}


def fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def assert_error(response: httpx.Response, status: int, kind: str = "invalid_input") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == kind, body
    return str(body["detail"])


@pytest.mark.parametrize("path", [
    "/v1/facilities/a%00b", "/v1/facilities/a%00b/history", "/v1/facilities/%00",
    "/v1/facilities?q=%00", "/v1/facilities?kind=lot%00", "/v1/spaces/free?lat=41.1&lon=122.99%00",
    "/v1/facilities/zqgc-lot/history?step=15m%00",
])
async def test_nul_in_path_or_query_is_422_and_the_next_request_works(client: httpx.AsyncClient, path: str) -> None:
    assert "NUL" in assert_error(await client.get(path), 422)
    assert (await client.get("/v1/facilities/zqgc-lot")).status_code == 200  # the next request is fine


async def test_nul_in_bodies_is_422_everywhere(client: httpx.AsyncClient, make_key: Any) -> None:
    admin = await make_key("admin")
    operator = await make_key("operator", "tiedong-city")
    cases = [
        ("POST", "/v1/admin/keys", {"role": "driver", "name": "a\x00b"}, admin),
        ("POST", "/v1/admin/rules", {"facility_id": "zqgc-lot", "no_parking": True, "note": "\x00"}, admin),
        ("PUT", "/v1/operators/tiedong-city/inventory", fc(lot(name="坏\x00名")), operator),
        ("PUT", "/v1/operators/tiedong-city/inventory", fc(lot(fee="5元\x00")), operator),
        ("POST", "/v1/operators/tiedong-city/sensors/mag-000001/occupancy",
         {"occupied": True, "observed_at": "2026-12-01T08:00:00+08:00\x00"}, operator),
    ]
    for method, path, body, key in cases:
        response = await client.request(method, path, json=body, headers=key)
        assert "NUL" in assert_error(response, 422), (path, body)
    # an escaped backslash before u0000 is text, not a NUL
    response = await client.post("/v1/admin/keys", content=b'{"role": "driver", "name": "C:\\\\u0000"}',
                                 headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "C:\\u0000"


async def test_bad_utf8_is_422_invalid_input_like_other_bad_bodies(client: httpx.AsyncClient, make_key: Any) -> None:
    admin = await make_key("admin")
    bad = await client.post("/v1/admin/rules", content=b'{"note": "\xff\xfe"}',
                            headers={**admin, "Content-Type": "application/json"})
    assert "UTF-8" in assert_error(bad, 422)
    malformed = await client.post("/v1/admin/rules", content=b'{"note": ',
                                  headers={**admin, "Content-Type": "application/json"})
    assert_error(malformed, 422)


@pytest.mark.parametrize("path", [
    "/v1/facilities?lat=41.1&lat=42&lon=122.99", "/v1/spaces/free?lat=41.11&lat=42&lon=122.99",
    "/v1/facilities?q=a&q=b", "/v1/facilities/zqgc-lot/history?step=15m&step=1h",
])
async def test_a_repeated_single_valued_parameter_is_422(client: httpx.AsyncClient, path: str) -> None:
    detail = assert_error(await client.get(path), 422)
    assert "more than once" in detail


async def test_repeated_list_parameters_stay_allowed() -> None:
    app = FastAPI()

    @app.get("/t")
    async def endpoint(tag: Annotated[list[str], Query()], one: str = "x") -> dict[str, Any]:
        return {"tag": tag, "one": one}

    app.add_middleware(input_guard.InputGuard, owner=app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.get("/t?tag=a&tag=b&one=y")
        assert ok.json() == {"tag": ["a", "b"], "one": "y"}
        assert (await c.get("/t?tag=a&one=y&one=z")).status_code == 422
        assert (await c.get("/t?tag=a&unknown=1&unknown=2")).status_code == 200  # undeclared: the route's business


async def test_strict_types_in_inventory_rules_and_keys(client: httpx.AsyncClient, make_key: Any) -> None:
    admin = await make_key("admin")
    operator = await make_key("operator", "tiedong-city")
    for bad in (lot(capacity="2"), lot(counted="yes"), lot(capacity=2.5)):
        response = await client.put("/v1/operators/tiedong-city/inventory", json=fc(bad), headers=operator)
        assert_error(response, 422)
    response = await client.put("/v1/operators/tiedong-city/inventory", json=fc(lot(), space("h-1", accessible="yes")),
                                headers=operator)
    assert "accessible" in assert_error(response, 422)
    rule = await client.post("/v1/admin/rules", json={"facility_id": "zqgc-lot", "max_stay_minutes": "60"},
                             headers=admin)
    assert_error(rule, 422)
    key = await client.post("/v1/admin/keys", json={"role": "driver", "max_holds": "3"}, headers=admin)
    assert_error(key, 422)


async def test_z_coordinates_are_dropped_and_said(client: httpx.AsyncClient, make_key: Any, db: AsyncSession) -> None:
    operator = await make_key("operator", "tiedong-city")
    ring = [[*p, 35.0] for p in RING]
    doc = fc(lot(ring=ring), space("h-1", coords=[122.9902, 41.1101, 12.0]))
    response = await client.put("/v1/operators/tiedong-city/inventory", json=doc, headers=operator)
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == ["feature 'h-lot': z (height) coordinates dropped",
                                           "feature 'h-1': z (height) coordinates dropped"]
    dims = (await db.execute(text("SELECT ST_NDims(geom) FROM facilities WHERE id = 'h-lot'"))).scalar_one()
    assert dims == 2
    admin = await make_key("admin")
    zone = {"type": "Polygon", "coordinates": [[[*p, 5] for p in RING]]}
    rule = await client.post("/v1/admin/rules", json={"zone": zone, "no_parking": True}, headers=admin)
    assert rule.status_code == 201, rule.text
    assert rule.json()["zone"]["coordinates"][0][0] == RING[0]


@pytest.mark.parametrize(("bad", "says"), [
    ("a/b/#/+", "not a valid id"), ("mag 1", "not a valid id"), ("x" * 101, "100 characters"),
    ("$SYS", "not a valid id"), ("传感器", "not a valid id"),
])
async def test_sensor_and_feature_ids_follow_one_grammar(
    client: httpx.AsyncClient, make_key: Any, bad: str, says: str,
) -> None:
    operator = await make_key("operator", "tiedong-city")
    response = await client.put("/v1/operators/tiedong-city/inventory", json=fc(lot(), space("h-1", sensor=bad)),
                                headers=operator)
    assert says in assert_error(response, 422)
    response = await client.put("/v1/operators/tiedong-city/inventory", json=fc(lot(fid=bad)), headers=operator)
    assert "needs an id of" in assert_error(response, 422)


@pytest.mark.parametrize(("ring", "says"), [
    ([[-180, -85], [180, -85], [180, 85], [-180, 85], [-180, -85]], "outside the service area"),
    ([[122.90, 41.05], [122.95, 41.05], [122.95, 41.09], [122.90, 41.09], [122.90, 41.05]], "km²"),
    ([[122.99, 41.11], [122.991, 41.111], [122.991, 41.11], [122.99, 41.111], [122.99, 41.11]], "invalid"),
    ([[122.99, 41.11], [122.991, 41.11], [122.99, 41.11]], "Too few points"),
])
async def test_implausible_geometries_are_refused(
    client: httpx.AsyncClient, make_key: Any, ring: list[list[float]], says: str,
) -> None:
    operator = await make_key("operator", "tiedong-city")
    response = await client.put("/v1/operators/tiedong-city/inventory", json=fc(lot(ring=ring, capacity=0)),
                                headers=operator)
    assert says in assert_error(response, 422)


async def test_a_space_far_from_its_facility_is_refused(client: httpx.AsyncClient, make_key: Any) -> None:
    operator = await make_key("operator", "tiedong-city")
    response = await client.put("/v1/operators/tiedong-city/inventory",
                                json=fc(lot(), space("h-1", coords=[123.01, 41.12])), headers=operator)
    assert "outside its facility" in assert_error(response, 422)


async def test_a_zone_outside_the_service_area_is_refused(client: httpx.AsyncClient, make_key: Any) -> None:
    admin = await make_key("admin")
    zone = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    response = await client.post("/v1/admin/rules", json={"zone": zone, "no_parking": True}, headers=admin)
    assert "service area" in assert_error(response, 422)


async def test_refusals_say_an_operator_and_an_enforcement_key(client: httpx.AsyncClient, make_key: Any) -> None:
    operator, officer = await make_key("operator", "tiedong-city"), await make_key("enforcement")
    assert "an operator key may not" in assert_error(await client.get("/v1/enforcement/violations", headers=operator),
                                                     403, "forbidden")
    assert "an enforcement key may not" in assert_error(
        await client.post("/v1/admin/keys", json={"role": "driver"}, headers=officer), 403, "forbidden")


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://evil.example/\",\"点击\")", "+1", "-2+3", "@SUM(A1)",
                                   "\tx", "\rx"])
def test_csv_cells_that_start_a_formula_are_neutralised(value: str) -> None:
    assert safe_cell(value) == "'" + value
    text_ = "".join(rows_to_csv([{"a": value, "n": -5}], ["a", "n"]))
    row = list(csv.reader(io.StringIO(text_)))[1]
    assert row == ["'" + value, "-5"]  # a negative number stays a number


async def test_violations_csv_has_no_live_formula(client: httpx.AsyncClient, make_key: Any, db: AsyncSession) -> None:
    await db.execute(text("UPDATE facilities SET name = '=HYPERLINK(\"http://evil.example/\",\"点击\")' "
                          "WHERE id = 's219-00'"))
    sid = (await facility_spaces(db, "s219-00"))[0]
    await set_spaces(db, [sid], occupied=True)
    await db.execute(text(
        "INSERT INTO violations (space_id, facility_id, kind, stay_since, started_at, geom) "
        "SELECT id, facility_id, 'overstay', now() - interval '3 hours', now() - interval '1 hour', geom "
        "FROM spaces WHERE id = :s"), {"s": sid})
    officer = await make_key("enforcement")
    response = await client.get("/v1/enforcement/violations.csv", headers=officer)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    ours = [row for row in rows if row["space_id"] == sid]
    assert [row["facility_name"] for row in ours] == ["'=HYPERLINK(\"http://evil.example/\",\"点击\")"]
    assert not [v for row in rows for v in row.values() if v and v[0] in "=+@\t\r"]
