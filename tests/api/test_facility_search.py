"""Issue 18: finding 站前广场 by name (``GET /v1/facilities?q=``) and the 禁停 stretch in the list."""

from __future__ import annotations

import httpx

from matching.geo import haversine_m


async def test_q_finds_facilities_by_name_best_first(client: httpx.AsyncClient) -> None:
    hits = (await client.get("/v1/facilities", params={"q": "站前广场"})).json()
    assert [f["id"] for f in hits] == ["zqgc-lot"]
    assert hits[0]["name"] == "站前广场停车场"
    assert hits[0]["distance_m"] is None
    park = [f["name"] for f in (await client.get("/v1/facilities", params={"q": "烈士山"})).json()]
    assert park == ["烈士山南门停车场", "烈士山公园停车场"]  # both start with the query: the shorter name first
    assert [f["id"] for f in (await client.get("/v1/facilities", params={"q": "ZQGC-LOT"})).json()] == ["zqgc-lot"]
    wide = (await client.get("/v1/facilities", params={"q": "站前 广场"})).json()  # spaces ignored
    assert [f["id"] for f in wide] == ["zqgc-lot"]
    assert (await client.get("/v1/facilities", params={"q": "不存在"})).json() == []


async def test_q_with_a_point_is_by_distance_within_the_radius(client: httpx.AsyncClient) -> None:
    lat, lon = 41.1140, 122.9760  # the west end of 二一九路
    near = (await client.get("/v1/facilities", params={"q": "二一九路", "lat": lat, "lon": lon,
                                                        "radius_m": 1500})).json()
    assert near
    assert all(f["name"].startswith("二一九路") for f in near)
    distances = [f["distance_m"] for f in near]
    assert distances == sorted(distances)
    assert max(distances) <= 1500
    first = near[0]
    assert abs(haversine_m(lat, lon, first["lat"], first["lon"]) - first["distance_m"]) < 1
    everywhere = (await client.get("/v1/facilities", params={"q": "二一九路"})).json()
    assert len(everywhere) == 10 > len(near)
    geo = (await client.get("/v1/facilities", params={"q": "站前广场", "format": "geojson"})).json()
    assert [f["properties"]["id"] for f in geo["features"]] == ["zqgc-lot"]


async def test_q_is_validated(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/facilities", params={"q": ""})).status_code == 422
    assert (await client.get("/v1/facilities", params={"q": "x" * 101})).status_code == 422


async def test_the_no_parking_stretch_says_so(client: httpx.AsyncClient) -> None:
    listed = {f["id"]: f for f in (await client.get("/v1/facilities", params={"limit": 500})).json()}
    assert listed["s51-04"]["no_parking"] is True
    assert listed["s51-04"]["status"] == "closed"
    # the school stretch only at its hours (Mo-Fr 07:00-08:30), every other facility never
    assert not [fid for fid, f in listed.items() if f["no_parking"] and fid not in ("s51-04", "s51-05")]
    assert (await client.get("/v1/facilities/s51-04")).json()["no_parking"] is True
