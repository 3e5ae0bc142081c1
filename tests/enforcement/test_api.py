"""The enforcement API: roles, violations (JSON, GeoJSON, CSV), hotspots, patrol."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import text

from app.enforcement.violations import CSV_COLUMNS
from matching.geo import haversine_m
from tests.enforcement.helpers import add_events, add_violation, space_position

ENDPOINTS = [
    "/v1/enforcement/violations",
    "/v1/enforcement/violations.csv",
    "/v1/enforcement/hotspots",
    "/v1/enforcement/patrol?lat=41.12&lon=122.99",
]
SPREAD = ["s219-00-005", "s219-05-010", "s51-02-010", "s51-08-010", "s219-09-030", "s51-06-020"]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(("role", "status"), [
    (None, 401), ("driver", 403), ("operator", 403), ("enforcement", 200), ("admin", 200)])
async def test_only_enforcement_and_admin_keys(client, make_key, path, role, status) -> None:  # type: ignore[no-untyped-def]
    headers = {} if role is None else await make_key(role, "tiedong-city" if role == "operator" else None)
    response = await client.get(path, headers=headers)
    assert response.status_code == status, response.text
    if status >= 400:
        assert set(response.json()) == {"error", "detail"}


async def test_active_violations_with_duration_bbox_and_kind(client, db, make_key) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    open_id = await add_violation(db, "s219-00-005", started_at=now - timedelta(minutes=40))
    await add_violation(db, "s51-04-003", kind="no_parking", started_at=now - timedelta(minutes=5),
                        limit_minutes=None)
    await add_violation(db, "s51-02-010", started_at=now - timedelta(hours=3), ended_at=now - timedelta(hours=2))
    headers = await make_key("enforcement")
    rows = (await client.get("/v1/enforcement/violations", headers=headers)).json()
    assert {r["space_id"] for r in rows} == {"s219-00-005", "s51-04-003"}  # active by default
    mine = next(r for r in rows if r["id"] == open_id)
    assert 39.5 <= mine["duration_minutes"] <= 41
    assert mine["facility_id"] == "s219-00"
    assert mine["limit_minutes"] == 120
    lat, lon = await space_position(db, "s219-00-005")
    assert (mine["lat"], mine["lon"]) == pytest.approx((lat, lon))
    box = f"{lon - 0.0005},{lat - 0.0005},{lon + 0.0005},{lat + 0.0005}"
    boxed = (await client.get(f"/v1/enforcement/violations?bbox={box}", headers=headers)).json()
    assert [r["id"] for r in boxed] == [open_id]
    kinds = (await client.get("/v1/enforcement/violations?kind=no_parking", headers=headers)).json()
    assert [r["space_id"] for r in kinds] == ["s51-04-003"]
    period = (await client.get("/v1/enforcement/violations", headers=headers, params={
        "since": (now - timedelta(hours=4)).isoformat(), "until": (now - timedelta(hours=1)).isoformat()})).json()
    assert [r["space_id"] for r in period] == ["s51-02-010"]
    assert period[0]["duration_minutes"] == 60.0


async def test_geojson_and_csv_exports(client, db, make_key) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    for k, space in enumerate(SPREAD[:3]):
        await add_violation(db, space, started_at=now - timedelta(minutes=10 + k))
    headers = await make_key("enforcement")
    fc = (await client.get("/v1/enforcement/violations?format=geojson", headers=headers)).json()
    assert fc["type"] == "FeatureCollection"
    assert {f["properties"]["space_id"] for f in fc["features"]} == set(SPREAD[:3])
    assert all(f["geometry"]["type"] == "Point" for f in fc["features"])
    for path in ("/v1/enforcement/violations.csv?active=true", "/v1/enforcement/violations?format=csv"):
        response = await client.get(path, headers=headers)
        assert response.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(response.text)))
        assert tuple(csv.DictReader(io.StringIO(response.text)).fieldnames or ()) == CSV_COLUMNS
        assert sorted(r["space_id"] for r in table) == sorted(SPREAD[:3])


async def test_bad_parameters_are_422(client, make_key) -> None:  # type: ignore[no-untyped-def]
    headers = await make_key("enforcement")
    for path in ("/v1/enforcement/violations?bbox=1,2,3", "/v1/enforcement/violations?bbox=5,5,1,1",
                 "/v1/enforcement/violations?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z",
                 "/v1/enforcement/hotspots?cell_m=1", "/v1/enforcement/patrol?lat=91&lon=0",
                 "/v1/enforcement/hotspots?since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 422, path
        assert response.json()["error"] == "invalid_input"


async def test_hotspot_counts_sum_to_the_violations_of_the_period(client, db, make_key) -> None:  # type: ignore[no-untyped-def]
    until = datetime.now(UTC).replace(microsecond=0)
    since = until - timedelta(hours=6)
    for k, space in enumerate(SPREAD * 2):
        await add_violation(db, space, started_at=since + timedelta(minutes=17 * k),
                            ended_at=since + timedelta(minutes=17 * k + 25))
    await add_violation(db, SPREAD[0], started_at=since - timedelta(hours=3), ended_at=since - timedelta(hours=2))
    await add_violation(db, SPREAD[1], started_at=since - timedelta(minutes=10), ended_at=since + timedelta(minutes=20))
    headers = await make_key("enforcement")
    params = {"since": since.isoformat(), "until": until.isoformat(), "cell_m": 150, "by": "hour"}
    fc = (await client.get("/v1/enforcement/hotspots", params=params, headers=headers)).json()
    listed = (await client.get("/v1/enforcement/violations", headers=headers, params={
        "since": since.isoformat(), "until": until.isoformat(), "limit": 5000})).json()
    assert len(listed) == 2 * len(SPREAD) + 1
    assert sum(f["properties"]["count"] for f in fc["features"]) == len(listed)
    assert fc["properties"]["count"] == len(listed)
    assert all(f["properties"]["count"] > 0 for f in fc["features"])  # empty cells are left out
    assert all(sum(f["properties"]["by_hour"]) == f["properties"]["count"] for f in fc["features"])
    minutes = sum(f["properties"]["minutes_in_violation"] for f in fc["features"])
    assert minutes == pytest.approx(2 * len(SPREAD) * 25 + 20, abs=0.5)  # clipped to the period
    for row in listed:  # each violation lies in exactly one returned cell
        point = Point(row["lon"], row["lat"])
        assert sum(shape(f["geometry"]).covers(point) for f in fc["features"]) >= 1


async def test_hotspot_cells_are_those_of_st_squaregrid_in_utm(client, db, make_key) -> None:  # type: ignore[no-untyped-def]
    until = datetime.now(UTC)
    await add_violation(db, "s51-02-010", started_at=until - timedelta(hours=1), ended_at=until)
    headers = await make_key("enforcement")
    fc = (await client.get("/v1/enforcement/hotspots", headers=headers, params={"cell_m": 100})).json()
    [feature] = fc["features"]
    assert fc["properties"]["srid"] == 32651  # UTM zone 51N: the district is at 123° E
    expected = (await db.execute(text(
        "SELECT g.i || ':' || g.j, ST_Area(g.geom) FROM spaces s, "
        "ST_SquareGrid(100, ST_Transform(s.geom, 32651)) AS g WHERE s.id = 's51-02-010' "
        "AND ST_Intersects(g.geom, ST_Transform(s.geom, 32651))"))).one()
    assert feature["properties"]["cell"] == expected[0]
    assert expected[1] == pytest.approx(100 * 100)


async def test_hotspot_rate_is_per_occupied_space_hour_from_history(client, db, make_key) -> None:  # type: ignore[no-untyped-def]
    until = datetime.now(UTC).replace(microsecond=0)
    since = until - timedelta(hours=10)
    space = "s219-05-010"
    # Occupied 1 h before the period and 1 h into it, then 2 h and 3 h stays: 6 h in the period.
    await add_events(db, space, [
        (since - timedelta(hours=1), True), (since + timedelta(hours=1), False),
        (since + timedelta(hours=2), True), (since + timedelta(hours=4), False),
        (since + timedelta(hours=5), True), (since + timedelta(hours=8), False)])
    for start in (3, 7, 8):
        await add_violation(db, space, started_at=since + timedelta(hours=start),
                            ended_at=since + timedelta(hours=start, minutes=30))
    headers = await make_key("enforcement")
    fc = (await client.get("/v1/enforcement/hotspots", headers=headers, params={
        "since": since.isoformat(), "until": until.isoformat(), "cell_m": 20})).json()
    [cell] = [f["properties"] for f in fc["features"]]
    assert cell["count"] == 3
    assert cell["occupied_space_hours"] == pytest.approx(6.0)
    assert cell["violations_per_occupied_space_hour"] == pytest.approx(0.5)
    assert cell["minutes_in_violation"] == pytest.approx(90)


async def test_patrol_route_visits_the_nearest_active_violations(client, db, make_key) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    ids = {await add_violation(db, space, started_at=now - timedelta(minutes=30)): space for space in SPREAD}
    await add_violation(db, "s219-00-001", started_at=now - timedelta(hours=2), ended_at=now - timedelta(hours=1))
    lat, lon = await space_position(db, SPREAD[0])
    headers = await make_key("enforcement")
    body = (await client.get(f"/v1/enforcement/patrol?lat={lat}&lon={lon}&limit=50", headers=headers)).json()
    assert sorted(s["id"] for s in body["stops"]) == sorted(ids)  # the closed one is not visited
    assert [s["order"] for s in body["stops"]] == list(range(1, len(SPREAD) + 1))
    assert body["stops"][0]["space_id"] == SPREAD[0]  # the officer stands at it
    points = [(lat, lon)] + [(s["lat"], s["lon"]) for s in body["stops"]]
    walked = sum(haversine_m(*a, *b) for a, b in zip(points, points[1:], strict=False))
    assert body["total_distance_m"] == pytest.approx(walked, abs=1.0)
    limited = (await client.get(f"/v1/enforcement/patrol?lat={lat}&lon={lon}&limit=2", headers=headers)).json()
    assert limited["count"] == 2
    assert limited["stops"][0]["space_id"] == SPREAD[0]
