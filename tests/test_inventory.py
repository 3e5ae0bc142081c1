"""Inventory import: validation names the bad feature, and nothing is half-written."""

from __future__ import annotations

import copy
import csv
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, InvalidInput
from app.inventory import service as inventory
from app.inventory.models import Facility, ParkingRule, Sensor, Space
from tests.conftest import shared_path


def lot(fid: str = "t-lot", capacity: int = 2) -> dict[str, Any]:
    ring = [[122.99, 41.11], [122.991, 41.11], [122.991, 41.111], [122.99, 41.111], [122.99, 41.11]]
    return {"type": "Feature", "id": fid, "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"feature": "facility", "name": "测试停车场", "kind": "lot",
                           "capacity": capacity, "counted": False, "fee": "5元/小时",
                           "opening_hours": "Mo-Su 00:00-24:00", "public_hours": None}}


def space(sid: str, lon: float = 122.9902, lat: float = 41.1101, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": sid, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"feature": "space", "facility_id": "t-lot", "sensor_id": f"s-{sid}",
                           "rules": [{"max_stay_minutes": 120, "days": "Mo-Sa", "from": "08:00",
                                      "to": "20:00"}], **props}}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


async def count(db: AsyncSession, model: Any, **where: Any) -> int:
    stmt = select(func.count()).select_from(model).filter_by(**where)
    return int((await db.execute(stmt)).scalar_one())


async def test_import_writes_facilities_spaces_sensors_rules(db: AsyncSession) -> None:
    result = await inventory.import_inventory(
        db, operator_id="op-t", doc=collection(lot(), space("t-1"), space("t-2", lon=122.9905)))
    assert (result.facilities, result.spaces, result.sensors, result.rules) == (1, 2, 2, 2)
    assert await count(db, Space, facility_id="t-lot") == 2
    assert await count(db, Sensor, operator_id="op-t") == 2
    assert await count(db, ParkingRule, space_id="t-1") == 1


async def test_reimport_is_an_upsert(db: AsyncSession) -> None:
    doc = collection(lot(), space("t-1"))
    await inventory.import_inventory(db, operator_id="op-t", doc=doc)
    doc2 = copy.deepcopy(doc)
    doc2["features"][0]["properties"]["name"] = "改名停车场"
    await inventory.import_inventory(db, operator_id="op-t", doc=doc2)
    assert (await db.get(Facility, "t-lot")).name == "改名停车场"  # type: ignore[union-attr]
    assert await count(db, ParkingRule, space_id="t-1") == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["features"][1]["geometry"].update(coordinates=[200, 41.11]), "'t-1'"),
        (lambda d: d["features"][1]["geometry"].update(coordinates=[123.5, 41.11]), "outside its facility"),
        (lambda d: d["features"][0]["properties"].update(capacity=0), "capacity 0 but 1 spaces"),
        (lambda d: d["features"][0]["properties"].update(kind="curb"), "needs a LineString"),
        (lambda d: d["features"][0]["properties"].update(opening_hours="Mo-Xx 1-2"), "'t-lot'"),
        (lambda d: d["features"][1]["properties"].update(facility_id="nope"), "unknown facility"),
        (lambda d: d["features"].append(copy.deepcopy(d["features"][1])), "duplicate id"),
        (lambda d: d["features"][1]["properties"]["rules"][0].update({"from": "25:00"}), "bad time"),
        (lambda d: d.update(type="Feature"), "FeatureCollection"),
    ],
)
async def test_a_bad_feature_rejects_everything(db: AsyncSession, mutate: Any, message: str) -> None:
    doc = collection(lot(), space("t-1"))
    mutate(doc)
    before = await count(db, Space)
    with pytest.raises(InvalidInput, match=message):
        await inventory.import_inventory(db, operator_id="op-t", doc=doc)
    assert await count(db, Space) == before
    assert await count(db, Facility, id="t-lot") == 0


async def test_an_operator_cannot_overwrite_another_operators_facility(db: AsyncSession) -> None:
    doc = lot("zqgc-lot")  # belongs to tiedong-city in the demo district
    with pytest.raises(Forbidden, match="another operator"):
        await inventory.import_inventory(db, operator_id="op-t", doc=collection(doc))


def melbourne_inventory(limit: int = 400) -> dict[str, Any]:
    """Real Melbourne bays as curb spaces, grouped into one facility per street marker side."""
    with open(shared_path("data", "melbourne", "bay_snapshots.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["file"] == "sensors_T11-18.csv"][:limit]
    features = []
    for r in rows:
        lon, lat = float(r["lon"]), float(r["lat"])
        fid = f"mel-{r['bay_id']}"
        features.append({"type": "Feature", "id": fid, "geometry": {"type": "LineString", "coordinates": [
            [lon - 0.00003, lat], [lon + 0.00003, lat]]}, "properties": {
            "feature": "facility", "name": f"Melbourne bay {r['bay_id']}", "kind": "curb", "capacity": 1}})
        features.append(space(f"{fid}-1", lon=lon, lat=lat, facility_id=fid,
                              sensor_id=f"mel-sensor-{r['bay_id']}"))
    return collection(*features)


async def test_real_melbourne_bays_import(db: AsyncSession) -> None:
    doc = melbourne_inventory()
    result = await inventory.import_inventory(db, operator_id="melbourne", doc=doc)
    assert result.spaces == 400
    assert result.facilities == 400
    stored = (await db.execute(text(
        "SELECT count(*) FROM spaces s JOIN sensors n ON n.space_id = s.id WHERE s.facility_id LIKE 'mel-%'"
    ))).scalar_one()
    assert stored == 400  # every bay is a space with its sensor


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "inventory is not JSON"),
    (b'{"type": "FeatureCollection", "features": [', "inventory is not JSON"),
    (b"[1, 2]", "FeatureCollection"),
    (b'{"features": [], "type": "FeatureCollection"}', "no features"),
    (b'{"type": "FeatureCollection", "features": [{"id": "t-lot", "properties": {"name": "a\\u0000"}}]}',
     r"NUL character \(U\+0000\) in \$\.features\[0\]\.properties\.name"),
])
async def test_a_streamed_body_is_refused_in_one_line(db: AsyncSession, body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        await inventory.import_inventory(db, operator_id="op-t", doc=body)
    assert "\n" not in caught.value.detail


async def test_streamed_3d_positions_are_noted_and_the_notes_capped(db: AsyncSession) -> None:
    spaces = [space(f"t-{i}", lon=122.9901 + i * 0.00002) for i in range(30)]
    for s in spaces:
        s["geometry"]["coordinates"].append(12.5)
    doc = collection(lot(capacity=30), *spaces)
    result = await inventory.import_inventory(db, operator_id="op-t", doc=orjson.dumps(doc))
    assert result.spaces == 30
    assert len(result.warnings) == 21
    assert result.warnings[0] == "feature 't-0': z (height) coordinates dropped"
    assert result.warnings[-1] == "and 10 more features with the same kind of note"
