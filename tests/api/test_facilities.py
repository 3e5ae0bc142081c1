"""GET /v1/facilities, /v1/facilities/{id} and …/history: numbers, statuses, validation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.availability import service as availability
from matching.geo import haversine_m
from tests.api.conftest import facility_spaces, hold, set_count, set_spaces

CENTRE = {"lat": 41.112, "lon": 122.997}
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def facilities(client: httpx.AsyncClient, **params: object) -> dict[str, dict[str, object]]:
    response = await client.get("/v1/facilities", params={**CENTRE, "radius_m": 5000, **params})
    assert response.status_code == 200, response.text
    return {f["id"]: f for f in response.json()}


async def test_list_is_by_distance_within_radius_with_contract_fields(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/facilities", params={**CENTRE, "radius_m": 600})
    assert response.status_code == 200
    items = response.json()
    assert items, "the demo district has facilities near its centre"
    distances = [f["distance_m"] for f in items]
    assert distances == sorted(distances)
    assert max(distances) <= 600
    for f in items:
        assert {"id", "name", "kind", "operator_id", "free", "total", "status", "observed_at",
                "distance_m", "lat", "lon"} <= set(f)
        assert abs(haversine_m(CENTRE["lat"], CENTRE["lon"], f["lat"], f["lon"]) - f["distance_m"]) < 0.5
    wider = await facilities(client)
    assert len(wider) > len(items)


async def test_observed_at_is_utc_with_z(client: httpx.AsyncClient, db: AsyncSession) -> None:
    """Times are written as the response models write them (``…Z``), list and GeoJSON alike."""
    spaces = await facility_spaces(db, "s219-00")
    await set_spaces(db, spaces, occupied=False)
    listed = (await facilities(client))["s219-00"]["observed_at"]
    geo = (await client.get("/v1/facilities", params={**CENTRE, "radius_m": 5000, "format": "geojson"})).json()
    stamps = [listed] + [f["properties"]["observed_at"] for f in geo["features"]
                         if f["properties"].get("observed_at")]
    assert len(stamps) > 1
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", t) for t in stamps), stamps[:3]


async def test_kind_filter(client: httpx.AsyncClient) -> None:
    curbs = await facilities(client, kind="curb")
    assert curbs
    assert {f["kind"] for f in curbs.values()} == {"curb"}
    garages = await facilities(client, kind="garage")
    assert set(garages) == {"zqdxj-garage", "cqgc-garage"}


async def test_sensor_facility_free_counts_fresh_free_unheld_spaces(
    client: httpx.AsyncClient, db: AsyncSession,
) -> None:
    spaces = await facility_spaces(db, "s219-00")
    await set_spaces(db, spaces[:30], occupied=True)
    await set_spaces(db, spaces[30:], occupied=False)
    f = (await facilities(client))["s219-00"]
    assert (f["free"], f["total"], f["status"]) == (10, 40, "spacesAvailable")
    await hold(db, facility_id="s219-00", space_id=spaces[35])
    assert (await facilities(client))["s219-00"]["free"] == 9
    await set_spaces(db, spaces[30:38], occupied=True)
    f = (await facilities(client))["s219-00"]
    assert (f["free"], f["status"]) == (2, "almostFull")  # spaces[35] is occupied now, hold or not
    await set_spaces(db, spaces[38:], occupied=True)
    assert (await facilities(client))["s219-00"]["status"] == "full"


async def test_stale_sensors_read_unknown_not_free(client: httpx.AsyncClient, db: AsyncSession, db_settings) -> None:
    spaces = await facility_spaces(db, "s219-01")
    await set_spaces(db, spaces, occupied=False, age_s=db_settings.stale_after_s + 60)
    f = (await facilities(client))["s219-01"]
    assert (f["free"], f["status"], f["unknown_spaces"]) == (None, "unknown", 40)
    await set_spaces(db, spaces[:30], occupied=False)  # 30 fresh, 10 still stale
    f = (await facilities(client))["s219-01"]
    assert (f["free"], f["status"], f["unknown_spaces"]) == (30, "spacesAvailable", 10)


async def test_counted_facility_uses_gate_count_minus_facility_holds(
    client: httpx.AsyncClient, db: AsyncSession,
) -> None:
    await set_count(db, "zqdxj-garage", free=137)
    f = (await facilities(client))["zqdxj-garage"]
    assert (f["free"], f["total"], f["status"], f["counted"]) == (137, 420, "spacesAvailable", True)
    await hold(db, facility_id="zqdxj-garage", space_id=None)
    assert (await facilities(client))["zqdxj-garage"]["free"] == 136
    await set_count(db, "zqdxj-garage", free=37)
    assert (await facilities(client))["zqdxj-garage"]["status"] == "almostFull"
    await set_count(db, "zqdxj-garage", free=37, total=30)  # a gate reporting a smaller total
    f = (await facilities(client))["zqdxj-garage"]
    assert f["free"] <= f["total"] == 30
    await set_count(db, "zqdxj-garage", free=37, age_s=7200)
    assert (await facilities(client))["zqdxj-garage"]["status"] == "unknown"


async def test_no_parking_stretch_reads_closed(client: httpx.AsyncClient) -> None:
    f = (await facilities(client))["s51-04"]
    assert (f["status"], f["free"], f["total"]) == ("closed", 0, 0)


@pytest.mark.parametrize(("local", "office", "residential"), [
    (datetime(2026, 11, 25, 12, 0), "closed", "open"),     # Wednesday noon: residents at work
    (datetime(2026, 11, 25, 20, 0), "open", "closed"),     # Wednesday evening: offices empty
    (datetime(2026, 11, 28, 12, 0), "open", "closed"),     # Saturday noon
])
async def test_shared_lots_outside_public_hours_read_closed(
    db: AsyncSession, local: datetime, office: str, residential: str,
) -> None:
    spaces = await facility_spaces(db, "sf-office-lot") + await facility_spaces(db, "xiangyang-res-lot")
    await set_spaces(db, spaces, occupied=False)
    now = local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    snap = await availability.snapshot(db, now=now, stale_after_s=10**9, timezone="Asia/Shanghai")
    by_id = {i.id: i for i in snap.items}
    for fid, expected in (("sf-office-lot", office), ("xiangyang-res-lot", residential)):
        item = by_id[fid]
        assert (item.status == "closed") == (expected == "closed"), (fid, item.status)
        assert item.free == (0 if expected == "closed" else item.total)


async def test_live_status_follows_public_hours_now(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await set_spaces(db, await facility_spaces(db, "bank-tower-lot"), occupied=False)
    f = (await facilities(client))["bank-tower-lot"]
    # public_hours "Mo-Fr 19:00-07:00; Sa,Su 00:00-24:00", worked out by hand (not by app.core.hours):
    # weekends, weekday evenings from 19:00, and the mornings until 07:00 after a Mo–Fr evening
    local = datetime.now(SHANGHAI)
    day, hour = local.weekday(), local.hour
    public = day >= 5 or (day <= 4 and hour >= 19) or (1 <= day <= 5 and hour < 7)
    assert (f["status"] == "closed") == (not public), (local, f["status"])


async def test_free_is_never_above_total(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await db.execute(text("UPDATE space_state SET occupied = false, observed_at = now(), last_seen = now()"))
    for f in (await facilities(client, limit=500)).values():
        assert f["free"] is None or 0 <= f["free"] <= f["total"], f


@pytest.mark.parametrize("params", [
    {"lat": 91, "lon": 122.99}, {"lat": 41.1, "lon": -181}, {"lat": 41.1}, {"lon": 122.99},
    {"lat": "nan", "lon": 122.99}, {"lat": 41.1, "lon": 122.99, "radius_m": 0},
    {"lat": 41.1, "lon": 122.99, "radius_m": 50_000}, {"limit": 0}, {"limit": 10_000},
    {"kind": "boat"}, {"format": "kml"},
])
async def test_parameters_are_validated_strictly(client: httpx.AsyncClient, params: dict[str, object]) -> None:
    response = await client.get("/v1/facilities", params=params)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"
    assert response.json()["detail"]


async def test_facility_detail_has_attributes(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await set_spaces(db, await facility_spaces(db, "zqgc-lot"), occupied=False)
    response = await client.get("/v1/facilities/zqgc-lot")
    assert response.status_code == 200
    f = response.json()
    assert (f["kind"], f["fee"], f["public_hours"]) == ("lot", "5元/小时", None)
    assert f["opening_hours"] == "Mo-Su 00:00-24:00"
    assert (f["accessible_total"], f["ev_total"], f["accessible_free"], f["ev_free"]) == (3, 4, 3, 4)
    assert f["geometry"]["type"] == "Polygon"
    curb = (await client.get("/v1/facilities/s219-00")).json()
    assert curb["rules"] == [{"kind": "time_limit", "max_stay_minutes": 120, "days": "Mo-Sa",
                              "from": "08:00", "to": "20:00"}]
    shared = (await client.get("/v1/facilities/sf-office-lot")).json()
    assert shared["public_hours"] == "Mo-Fr 18:30-07:30; Sa,Su 00:00-24:00"


async def test_unknown_facility_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/v1/facilities/nope", "/v1/facilities/nope/history"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


async def _events(db: AsyncSession, rows: list[tuple[str, datetime, bool]]) -> None:
    await db.execute(text(
        "INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, source) "
        "SELECT 'h-' || s, t, NULL, s, o, 'test' FROM unnest(CAST(:s AS text[]), CAST(:t AS timestamptz[]), "
        "CAST(:o AS bool[])) AS v(s, t, o)"),
        {"s": [r[0] for r in rows], "t": [r[1] for r in rows], "o": [r[2] for r in rows]})


async def test_history_of_a_sensor_facility_in_steps(client: httpx.AsyncClient, db: AsyncSession) -> None:
    spaces = await facility_spaces(db, "s219-02")
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    rows = [(s, t0 - timedelta(hours=1), False) for s in spaces]           # all known free before t0
    rows += [(s, t0 + timedelta(minutes=5), True) for s in spaces[:10]]    # 10 arrive by 08:15
    rows += [(s, t0 + timedelta(minutes=20), True) for s in spaces[10:30]]  # 20 more by 08:30
    rows += [(s, t0 + timedelta(minutes=20, seconds=1), True) for s in spaces[10:12]]  # repeats: no change
    rows += [(s, t0 + timedelta(minutes=40), False) for s in spaces[:5]]    # 5 leave by 08:45
    await _events(db, rows)
    response = await client.get("/v1/facilities/s219-02/history", params={
        "since": "2026-11-20T08:00:00Z", "until": "2026-11-20T09:00:00Z", "step": "15m"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["step_s"] == 900
    assert [(p["occupied"], p["free"]) for p in body["points"]] == [(0, 40), (10, 30), (30, 10), (25, 15), (25, 15)]
    assert body["points"][2]["occupancy"] == 0.75


async def test_history_before_any_event_is_unknown(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/facilities/s219-03/history", params={
        "since": "2025-01-01T00:00:00Z", "until": "2025-01-01T01:00:00Z", "step": "1h"})).json()
    assert [p["free"] for p in body["points"]] == [None, None]


async def test_history_of_a_counted_facility(client: httpx.AsyncClient, db: AsyncSession) -> None:
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    await db.execute(text(
        "INSERT INTO count_events (facility_id, observed_at, free, total, source) VALUES "
        "('cqgc-garage', :a, 200, NULL, 'test'), ('cqgc-garage', :b, 150, NULL, 'test')"),
        {"a": t0 - timedelta(minutes=1), "b": t0 + timedelta(minutes=50)})
    body = (await client.get("/v1/facilities/cqgc-garage/history", params={
        "since": "2026-11-20T08:00:00Z", "until": "2026-11-20T09:00:00Z", "step": "30m"})).json()
    assert [(p["free"], p["total"]) for p in body["points"]] == [(200, 300), (200, 300), (150, 300)]


@pytest.mark.parametrize("params", [
    {"step": "0m"}, {"step": "fortnight"}, {"step": "30s"},
    {"since": "2026-11-20T09:00:00Z", "until": "2026-11-20T08:00:00Z"},
    {"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z", "step": "15m"},
    {"since": "2026-11-20T08:00:00", "until": "2026-11-20T09:00:00Z"},
    {"since": "9999-12-31T00:00:00Z", "until": "9999-12-31T23:00:00Z", "step": "7d"},
])
async def test_history_parameters_are_validated(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/v1/facilities/s219-02/history", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
