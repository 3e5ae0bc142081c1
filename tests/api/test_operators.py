"""Operator pushes (same rules and write path as MQTT) and inventory upload."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api.conftest import facility_spaces
from tests.conftest import app_client, make_committed_key

MELBOURNE = Path(__file__).resolve().parents[3] / "shared" / "data" / "melbourne"


def now_iso(delta_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat()


async def sensor_of(db: AsyncSession, space_id: str) -> str:
    return (await db.execute(text("SELECT id FROM sensors WHERE space_id = :s"), {"s": space_id})).scalar_one()


async def rejected(db: AsyncSession) -> list[dict[str, Any]]:
    rows = await db.execute(text("SELECT topic, payload, reason, source FROM rejected_messages ORDER BY id"))
    return [dict(r) for r in rows.mappings()]


async def free_of(client: httpx.AsyncClient, facility_id: str) -> int | None:
    body = (await client.get(f"/v1/facilities/{facility_id}")).json()
    return body["free"]


async def test_occupancy_push_is_written_like_mqtt(client: httpx.AsyncClient, db: AsyncSession, make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key("operator", "tiedong-city")
    spaces = await facility_spaces(db, "s219-04")
    for i, space in enumerate(spaces):
        sensor = await sensor_of(db, space)
        response = await client.post(f"/v1/operators/tiedong-city/sensors/{sensor}/occupancy", headers=key,
                                     json={"occupied": i >= 5, "observed_at": now_iso(-10), "seq": 1})
        assert response.status_code == 202, response.text
    assert response.json()["accepted"] is True
    assert response.json()["id"] == sensor
    assert await free_of(client, "s219-04") == 5
    # the same event again is stored once; an older one does not move the state back
    again = await client.post(f"/v1/operators/tiedong-city/sensors/{sensor}/occupancy", headers=key,
                              json={"occupied": False, "observed_at": now_iso(-60)})
    assert again.status_code == 202
    assert await free_of(client, "s219-04") == 5
    n = (await db.execute(text("SELECT count(*) FROM occupancy_events WHERE space_id = ANY(:s) AND source = 'http'"),
                          {"s": spaces})).scalar_one()
    assert n == len(spaces) + 1


async def test_count_push(client: httpx.AsyncClient, make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key("operator", "shared-parking")
    response = await client.post("/v1/operators/shared-parking/facilities/lss-counted-lot/count", headers=key,
                                 json={"free": 42, "observed_at": now_iso(-5)})
    assert response.status_code == 202, response.text
    assert await free_of(client, "lss-counted-lot") == 42


async def test_rejected_pushes_are_recorded_and_answered_4xx(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient, db: AsyncSession, make_key,
) -> None:
    key = await make_key("operator", "tiedong-city")
    own = await sensor_of(db, (await facility_spaces(db, "s219-05"))[0])
    foreign = await sensor_of(db, (await facility_spaces(db, "sf-office-lot"))[0])
    base = "/v1/operators/tiedong-city"
    occupied = {"occupied": True, "observed_at": now_iso()}
    cases = [
        (f"{base}/sensors/{own}/occupancy", {**occupied, "observed_at": now_iso(3600)}, 422, "timestamp_in_future"),
        (f"{base}/sensors/{own}/occupancy", {"occupied": "yes", "observed_at": now_iso()}, 422, "invalid_field"),
        (f"{base}/sensors/{own}/occupancy", b"{not json", 422, "bad_json"),
        (f"{base}/sensors/no-such-sensor/occupancy", occupied, 404, "unknown_sensor"),
        (f"{base}/sensors/{foreign}/occupancy", occupied, 403, "wrong_operator"),
        (f"{base}/facilities/lss-counted-lot/count", {"free": 1, "observed_at": now_iso()}, 403, "wrong_operator"),
        (f"{base}/facilities/s219-05/count", {"free": 1, "observed_at": now_iso()}, 422, "not_counted"),
    ]
    for url, body, status, _reason in cases:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await client.post(url, headers=key, **kwargs)
        assert response.status_code == status, (url, response.text)
        assert set(response.json()) == {"error", "detail"}
    stored = await rejected(db)
    assert [r["reason"].split(":")[0] for r in stored] == [c[3] for c in cases]
    assert {r["source"] for r in stored} == {"http"}
    assert stored[0]["topic"].endswith(f"/tiedong-city/sensors/{own}/occupancy")
    assert stored[2]["payload"] == "{not json"


async def test_over_capacity_count_is_rejected(client: httpx.AsyncClient, db: AsyncSession, make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key("operator", "zhanqian-underground")
    response = await client.post("/v1/operators/zhanqian-underground/facilities/cqgc-garage/count", headers=key,
                                 json={"free": 301, "observed_at": now_iso()})
    assert response.status_code == 422
    assert response.json()["error"] == "free_above_capacity"
    assert (await rejected(db))[-1]["reason"].startswith("free_above_capacity")


def lot(fid: str, ring_origin: tuple[float, float] = (122.99, 41.13), capacity: int = 2) -> dict[str, Any]:
    x, y = ring_origin
    ring = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]
    return {"type": "Feature", "id": fid, "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"feature": "facility", "name": "测试停车场", "kind": "lot", "capacity": capacity}}


def space(sid: str, fid: str, lon: float = 122.9902, lat: float = 41.1302) -> dict[str, Any]:
    return {"type": "Feature", "id": sid, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"feature": "space", "facility_id": fid, "sensor_id": f"sensor-{sid}"}}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


async def test_inventory_upload(client: httpx.AsyncClient, make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key("operator", "tiedong-city")
    doc = collection(lot("op-lot"), space("op-lot-1", "op-lot"), space("op-lot-2", "op-lot", lon=122.9905))
    response = await client.put("/v1/operators/tiedong-city/inventory", headers=key, json=doc)
    assert response.status_code == 200, response.text
    assert response.json() == {"operator_id": "tiedong-city", "facilities": 1, "spaces": 2, "sensors": 2, "rules": 0,
                               "warnings": []}
    f = (await client.get("/v1/facilities/op-lot")).json()
    assert (f["operator_id"], f["total"], f["status"]) == ("tiedong-city", 2, "unknown")
    # adding spaces beyond the stored facility's capacity is refused
    more = collection(space("op-lot-3", "op-lot", lon=122.9907))
    response = await client.put("/v1/operators/tiedong-city/inventory", headers=key, json=more)
    assert response.status_code == 422
    assert "'op-lot'" in response.json()["detail"]


async def test_bad_inventory_names_the_feature_and_writes_nothing(fresh_db) -> None:  # type: ignore[no-untyped-def]
    settings = await fresh_db()
    key = await make_committed_key(settings, "operator", "tiedong-city")
    bad_space = space("bad-2", "bad-lot", lon=123.5)  # 40 km outside its facility
    out_of_range = {"type": "Point", "coordinates": [200, 41]}
    cases = [
        (collection(lot("bad-lot"), space("bad-1", "bad-lot"), bad_space), 422, "'bad-2'"),
        (collection(lot("bad-lot"), {**space("bad-1", "bad-lot"), "geometry": out_of_range}), 422, "'bad-1'"),
        (collection(lot("bad-lot", capacity=1), space("bad-1", "bad-lot"), space("bad-3", "bad-lot")), 422,
         "'bad-lot'"),
        (collection(lot("bad-lot"), lot("sf-office-lot")), 403, "'sf-office-lot'"),
        ({"type": "Feature"}, 422, "FeatureCollection"),
    ]
    async with app_client(settings) as client:
        for doc, status, named in cases:
            response = await client.put("/v1/operators/tiedong-city/inventory", headers=key, json=doc)
            assert response.status_code == status, response.text
            assert named in response.json()["detail"]
        assert (await client.get("/v1/facilities/bad-lot")).status_code == 404
        office = (await client.get("/v1/facilities/sf-office-lot")).json()
        assert office["operator_id"] == "shared-parking"
        assert office["kind"] == "lot"


def melbourne_bays(n: int = 24) -> dict[str, list[dict[str, str]]]:
    """The ``n`` bays nearest to the first bay of the 11:18 snapshot, in both snapshots."""
    with (MELBOURNE / "bay_snapshots.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    first = next(r for r in rows if r["file"] == "sensors_T11-18.csv")
    lat0, lon0 = float(first["lat"]), float(first["lon"])
    by_file: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    near = sorted(by_file["sensors_T11-18.csv"],
                  key=lambda r: (float(r["lat"]) - lat0) ** 2 + (float(r["lon"]) - lon0) ** 2)
    ids = {r["bay_id"] for r in near[:n]}
    return {f: sorted((r for r in rs if r["bay_id"] in ids), key=lambda r: r["bay_id"]) for f, rs in by_file.items()}


async def test_real_melbourne_bays_through_inventory_and_pushes(client: httpx.AsyncClient, make_key) -> None:  # type: ignore[no-untyped-def]
    snapshots = melbourne_bays()
    bays = snapshots["sensors_T11-18.csv"]
    lons, lats = [float(b["lon"]) for b in bays], [float(b["lat"]) for b in bays]
    box = [min(lons) - 1e-4, min(lats) - 1e-4, max(lons) + 1e-4, max(lats) + 1e-4]
    ring = [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]], [box[0], box[1]]]
    doc = collection(
        {"type": "Feature", "id": "mel-block", "geometry": {"type": "Polygon", "coordinates": [ring]},
         "properties": {"feature": "facility", "name": "Melbourne CBD bays", "kind": "lot", "capacity": len(bays)}},
        *[space(f"mel-{b['bay_id']}", "mel-block", float(b["lon"]), float(b["lat"])) for b in bays])
    admin = await make_key("admin")
    app = client.app  # type: ignore[attr-defined]
    app.state.settings = app.state.settings.model_copy(  # a service run for Melbourne, not the demo district
        update={"service_area": f"{box[0] - 0.01},{box[1] - 0.01},{box[2] + 0.01},{box[3] + 0.01}"})
    response = await client.put("/v1/operators/melbourne/inventory", headers=admin, json=doc)
    assert response.status_code == 200, response.text
    key = await make_key("operator", "melbourne")
    for age, name in ((120, "sensors_T11-18.csv"), (60, "sensors_T16-38.csv")):
        for b in snapshots[name]:
            response = await client.post(
                f"/v1/operators/melbourne/sensors/sensor-mel-{b['bay_id']}/occupancy", headers=key,
                json={"occupied": b["status"] == "Present", "observed_at": now_iso(-age)})
            assert response.status_code == 202, response.text
        expected = sum(b["status"] == "Unoccupied" for b in snapshots[name])
        near = (await client.get("/v1/facilities", params={"lat": lats[0], "lon": lons[0], "radius_m": 500})).json()
        mel = next(f for f in near if f["id"] == "mel-block")
        assert (mel["free"], mel["total"]) == (expected, len(bays))
    assert json.dumps(snapshots["sensors_T11-18.csv"]) != json.dumps(snapshots["sensors_T16-38.csv"])
