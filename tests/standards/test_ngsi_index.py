"""NGSI-LD ParkingSpot queries from the free-space index (``spot_index``) give the SQL path's
answer on the same data, entity for entity and in order: geo (near both ways, within,
intersects, contains, disjoint), ``q`` on status and beyond, ids, idPattern, paging and counts,
with stale, never-reported, no-parking and closed-facility spots in the mix. Both read the test's
own (rolled-back) transaction: the index is loaded through its connection."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import eligibility
from app.assignments.free_index import FreeIndex
from app.core.settings import Settings
from app.occupancy.service import driver_connection
from app.standards.ngsi_ld import geo, query, service
from app.standards.ngsi_ld.entities import Filters
from tests.conftest import app_client

LON, LAT = 122.997, 41.112


@pytest.fixture
async def mixed(db: AsyncSession, db_settings: Settings) -> list[tuple[float, float]]:
    """Random free/occupied; some never reported, some stale, a no-parking space, a closed facility."""
    await db.execute(text("UPDATE space_state SET occupied = (random() < 0.5), observed_at = now() - "
                          "random() * interval '1 hour', since = now(), last_seen = now()"))
    await db.execute(text("UPDATE space_state SET occupied = NULL, last_seen = NULL, observed_at = NULL "
                          "WHERE space_id IN (SELECT space_id FROM space_state ORDER BY md5(space_id) LIMIT 40)"))
    await db.execute(text("UPDATE space_state SET last_seen = now() - make_interval(secs => :s + 5) "
                          "WHERE space_id IN (SELECT space_id FROM space_state ORDER BY md5(space_id) DESC LIMIT 40)"),
                     {"s": db_settings.stale_after_s})
    await db.execute(text("UPDATE spaces SET no_parking = true "
                          "WHERE id IN (SELECT id FROM spaces ORDER BY id LIMIT 3)"))
    await db.execute(text("UPDATE facilities SET closed = true WHERE id = (SELECT min(facility_id) FROM spaces "
                          "WHERE facility_id <> (SELECT facility_id FROM spaces ORDER BY id LIMIT 1))"))
    rows = (await db.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM spaces ORDER BY id"))).all()
    return [(float(x), float(y)) for x, y in rows]


async def loaded(db: AsyncSession, settings: Settings) -> FreeIndex:
    index = FreeIndex(settings.stale_after_s)
    await index.load(await driver_connection(db))
    index.apply(await eligibility.load(db, datetime.now(ZoneInfo(settings.timezone))))
    return index


async def both(db: AsyncSession, settings: Settings, index: FreeIndex, **asked: Any) -> list[dict[str, Any]]:
    request = service.EntityQuery(types=("ParkingSpot",), **asked)
    sql = await service.find(db, settings=settings, request=request)
    mem = await service.find(db, settings=settings, request=request, index=index)
    assert [r.kv for r in mem.rows] == [r.kv for r in sql.rows], (asked, [r.id for r in mem.rows],
                                                                   [r.id for r in sql.rows])
    assert [r.observed_at for r in mem.rows] == [r.observed_at for r in sql.rows]
    for a, b in zip(mem.rows, sql.rows, strict=True):
        assert (a.distance_m is None) == (b.distance_m is None)
        assert a.distance_m is None or abs(a.distance_m - b.distance_m) < 1e-3  # type: ignore[operator]
    assert (mem.more, mem.total) == (sql.more, sql.total), asked
    return [r.kv for r in mem.rows]


def near(lon: float, lat: float, rel: str) -> Filters:
    return Filters(geo=geo.build(rel, {"type": "Point", "coordinates": [lon, lat]}))


async def test_near_and_status_as_sql(db: AsyncSession, db_settings: Settings,
                                      mixed: list[tuple[float, float]]) -> None:
    index = await loaded(db, db_settings)
    rng = random.Random(11)
    statuses: set[str] = set()
    for _ in range(12):
        lon, lat = rng.choice(mixed)
        lon, lat = lon + rng.uniform(-0.001, 0.001), lat + rng.uniform(-0.001, 0.001)
        for rel in (f"near;maxDistance=={rng.choice([60, 250, 900])}", "near;minDistance==1500"):
            for q in (None, 'status=="free"', 'status!="occupied";status!="closed"', 'status=="unknown"|name~=".*1$"'):
                parsed = query.parse(q) if q else None
                found = await both(db, db_settings, index, filters=near(lon, lat, rel), q=parsed, limit=10,
                                   count=True)
                statuses |= {e["status"] for e in found}
                await both(db, db_settings, index, filters=near(lon, lat, rel), q=parsed, offset=7, limit=5)
    assert statuses == {"free", "occupied", "unknown", "closed"}  # every status reached the comparison


async def test_other_geo_ids_patterns_and_paging_as_sql(db: AsyncSession, db_settings: Settings,
                                                        mixed: list[tuple[float, float]]) -> None:
    index = await loaded(db, db_settings)
    box = [[[122.99, 41.105], [123.0, 41.105], [123.0, 41.115], [122.99, 41.115], [122.99, 41.105]]]
    for rel, shape in (("within", {"type": "Polygon", "coordinates": box}),
                       ("intersects", {"type": "Polygon", "coordinates": box}),
                       ("disjoint", {"type": "Polygon", "coordinates": box}),
                       ("contains", {"type": "Point", "coordinates": list(mixed[5])}),
                       ("intersects", {"type": "LineString", "coordinates": [list(mixed[0]), list(mixed[9])]})):
        found = await both(db, db_settings, index, filters=Filters(geo=geo.build(rel, shape)), limit=1000,
                           count=True)
        assert found or rel == "intersects", rel
    ids = frozenset(f"urn:ngsi-ld:ParkingSpot:{i}" for i in index.ids[::37]) | {"urn:ngsi-ld:ParkingSpot:nope"}
    assert await both(db, db_settings, index, filters=Filters(ids=ids), limit=1000, count=True)
    await both(db, db_settings, index, filters=Filters(id_pattern="s219-0[0-3]"), q=query.parse('status=="free"'),
               limit=1000, count=True)
    seen: list[str] = []
    for offset in range(0, len(mixed) + 50, 97):
        seen += [e["id"] for e in await both(db, db_settings, index, offset=offset, limit=97, count=True)]
    assert len(seen) == len(set(seen)) == len(mixed)


async def test_stale_reads_unknown_in_both(db: AsyncSession, db_settings: Settings,
                                           mixed: list[tuple[float, float]]) -> None:
    sid = (await db.execute(text("SELECT id FROM spaces WHERE NOT no_parking ORDER BY id DESC LIMIT 1"))).scalar_one()
    await db.execute(text("UPDATE space_state SET occupied = false, last_seen = now() WHERE space_id = :s"), {"s": sid})
    index = await loaded(db, db_settings)
    one = Filters(ids=frozenset({f"urn:ngsi-ld:ParkingSpot:{sid}"}))
    assert [e["status"] for e in await both(db, db_settings, index, filters=one)] == ["free"]
    await db.execute(text("UPDATE space_state SET last_seen = now() - make_interval(secs => :a) WHERE space_id = :s"),
                     {"s": sid, "a": db_settings.stale_after_s + 1})
    await index.refresh(await driver_connection(db), [sid])  # what NOTIFY space_state triggers
    assert [e["status"] for e in await both(db, db_settings, index, filters=one)] == ["unknown"]
    lon, lat = mixed[0]
    far = replace(near(lon, lat, "near;maxDistance==100000"), ids=None)
    assert json.dumps(await both(db, db_settings, index, filters=far, q=query.parse('status=="unknown"'),
                                 limit=1000, count=True))


async def test_the_route_answers_from_the_index_as_from_postgis(fresh_db: Any) -> None:
    settings: Settings = await fresh_db()
    urls = []
    for lon, lat, rel in ((LON, LAT, "near;maxDistance==400"), (LON + 0.004, LAT - 0.002, "near;maxDistance==150")):
        for q in ('status=="unknown"', 'status!="free"', None):
            params = {"type": "ParkingSpot", "georel": rel, "geometry": "Point",
                      "coordinates": json.dumps([lon, lat]), "limit": "7", "offset": "3", "count": "true"}
            urls.append({**params, **({"q": q} if q else {})})
    answers = []
    for use_index in (True, False):
        async with app_client(settings.model_copy(update={"ngsi_index": use_index})) as client:
            assert client.app.state.matching.ready  # type: ignore[attr-defined]
            got = []
            for params in urls:
                r = await client.get("/ngsi-ld/v1/entities", params=params)
                assert r.status_code == 200, r.text
                got.append((r.json(), r.headers["link"], r.headers["NGSILD-Results-Count"]))
            answers.append(got)
    assert answers[0] == answers[1]
    assert any(body for body, _, _ in answers[0])
