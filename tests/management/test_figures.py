"""Every management figure against the brute-force minute-by-minute reading of tests/management/world.py.

The history is written in two parts, the second late (older hours than the first part's
newest), with the management answers asked in between: what the incremental rollups say at
the end must be what a reading of the whole history from scratch says.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from shapely.geometry import Point, shape

from app.core.settings import Settings
from app.management import pricing
from tests.conftest import ROOT, app_client, make_committed_key
from tests.management import world as w

PERIOD = {"since": w.A.isoformat(), "until": w.B.isoformat()}
TOL = 1e-5


@pytest.fixture(scope="module")
def history() -> w.World:
    return w.build()


@pytest.fixture(scope="module")
async def api(fresh_db: Any, history: w.World) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], Settings]]:
    settings: Settings = await fresh_db(management_hold_s=int(w.HOLD.total_seconds()),
                                        management_refresh_max_hours=24 * 400)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    headers = await make_committed_key(settings, "manager")
    try:
        async with app_client(settings) as client:
            first_part, late_part = _late_part(history)
            await w.store(conn, first_part)
            capped = settings.model_copy(update={"management_refresh_max_hours": 24})
            async with app_client(capped) as small:  # a long backlog is not rolled up inside a request
                skipped = await small.get("/v1/management/utilization", params=PERIOD, headers=headers)
                assert skipped.status_code == 200, skipped.text
                assert skipped.json() == []
            first = await client.get("/v1/management/utilization", params=PERIOD, headers=headers)
            assert first.status_code == 200, first.text
            assert first.json() != []
            await w.store(conn, late_part, inventory=False)
            yield client, headers, settings
    finally:
        await conn.close()


def _late_part(world: w.World) -> tuple[w.World, w.World]:
    """The history in two parts, every third reading late (older than the first part's newest)."""
    def part(items: list[Any], late: bool) -> list[Any]:
        return [x for i, x in enumerate(items) if (i % 3 == 1) == late]

    return tuple(w.World(world.facilities, part(world.events, late), part(world.counts, late),  # type: ignore[return-value]
                         part(world.passages, late)) for late in (False, True))


async def _get(api: tuple[httpx.AsyncClient, dict[str, str], Settings], path: str, **params: Any) -> httpx.Response:
    client, headers, _ = api
    response = await client.get(f"/v1/management/{path}", params={**PERIOD, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response


def _close(got: Any, want: Any, what: str) -> None:
    if want is None or got is None:
        assert got == want, what
    else:
        assert abs(float(got) - float(want)) <= TOL * max(1.0, abs(float(want))), f"{what}: {got} != {want}"


def _compare(items: list[dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert {i["key"] for i in items} == set(want)
    for item in items:
        for name, value in want[item["key"]].items():
            _close(item[name], value, f"{item['key']} {name}")


KEY_OF = {
    "facility": lambda fac, m: fac.id,
    "hour": lambda fac, m: f"{w.local(fac, m).hour:02d}",
    "weekday": lambda fac, m: str(w.local(fac, m).isoweekday()),
}


@pytest.mark.parametrize("by", ["facility", "hour", "weekday"])
async def test_utilization_is_the_brute_force(api: Any, history: w.World, by: str) -> None:
    items = (await _get(api, "utilization", by=by, limit=5000)).json()
    _compare(items, w.figures(history, KEY_OF[by]))


async def test_heat_table_is_the_brute_force(api: Any, history: w.World) -> None:
    body = (await _get(api, "facilities/F3/heat")).json()
    fac = history.facilities["F3"]
    want = w.figures(history, lambda f, m: f"{w.local(f, m).isoweekday()}:{w.local(f, m).hour}" if f is fac else "-")
    got = {f"{c['weekday']}:{c['hour']}": c for c in body["cells"]}
    assert set(got) == set(want) - {"-"}
    for key, cell in got.items():
        _close(cell["occupancy"], want[key]["mean_occupancy"], key)
        _close(cell["unknown_share"], want[key]["unknown_share"], key)


async def test_zones_are_named_groups_or_cells(api: Any, history: w.World) -> None:
    items = {i["key"]: i for i in (await _get(api, "utilization", by="zone")).json()}
    cell = next(k for k in items if k.startswith("cell:"))
    assert set(items) == {"east", cell}
    want = w.figures(history, lambda fac, m: "east" if fac.attrs.get("district") else cell)
    _compare(list(items.values()), want)


async def test_figures_hold_gaps_stays_and_voids(history: w.World) -> None:
    """The world has what the brute force is there to check (else a pass would mean little)."""
    mins = w.minutes(history)
    assert any(k == 0 for _, k, _ in mins["F3"]), "a stale gate counter"
    assert any(0 < k < 6 for _, k, _ in mins["F1"]), "stale sensors beside live ones"
    assert any(o * 100 >= 85 * k > 0 for _, k, o in mins["F2"]), "full time"
    ends = w.stays(history)
    assert any(s > 4 * 3600 for _, _, s in ends), "a long stay across midnight"
    assert any(p["voided"] and p["direction"] == "out" for p in history.passages)


async def test_sharing_inside_and_outside_public_windows(api: Any, history: w.World) -> None:
    items = (await _get(api, "sharing")).json()
    assert [i["facility_id"] for i in items] == ["F1"]
    item, fac = items[0], history.facilities["F1"]
    acc: dict[bool, list[int]] = defaultdict(lambda: [0, 0, 0])
    for m, k, o in w.minutes(history)["F1"]:
        a = acc[w.in_public(fac, m)]
        a[0] += k
        a[1] += o
        a[2] += 1
    _close(item["occupancy_public"], acc[True][1] / acc[True][0], "public")
    _close(item["occupancy_private"], acc[False][1] / acc[False][0], "private")
    _close(item["offered_space_hours"], 6 * acc[True][2] / 60, "offered")
    _close(item["used_space_hours"], acc[True][1] / 60, "used")
    _close(item["unknown_public_share"], 1 - acc[True][0] / (6 * acc[True][2]), "unknown")
    entries = [p for p in history.passages if p["facility_id"] == "F1" and not p["voided"]]
    assert item["entries"] == len(entries)
    _close(item["public_entry_share"], sum(w.in_public(fac, p["at"]) for p in entries) / len(entries), "entries")


async def test_pricing_occupancy_per_band_and_fees(api: Any, history: w.World) -> None:
    items = (await _get(api, "pricing", target="60-80", step="0.5", min="1", max="6")).json()
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for fid, rows in w.minutes(history).items():
        fac = history.facilities[fid]
        for m, k, o in rows:
            band = pricing.band_of(w.local(fac, m).isoweekday(), w.local(fac, m).hour)
            if band:
                acc[(fid, band)][0] += k
                acc[(fid, band)][1] += o
    assert {(i["facility_id"], i["band"]) for i in items} == {(f, b) for f in "F1 F2 F3".split() for b in pricing.BANDS}
    for i in items:
        k, o = acc.get((i["facility_id"], i["band"]), [0, 0])
        want = round(o / k, 4) if k else None
        assert i["occupancy"] == want, i
        fee = {"F1": 5.0}.get(i["facility_id"])
        assert i["current_fee"] == fee
        expected = pricing.recommend(occupancy=want, current_fee=fee, last_change=None, as_of=w.B,
                                     rule=pricing.Rule(step=0.5, floor=1, cap=6))
        assert (i["change"], i["recommended_fee"], i["reason"]) == (
            expected.change, expected.recommended_fee, expected.reason)
    assert any(i["change"] for i in items), "the world should move some fee"


async def test_pressure_cells_are_the_brute_force(api: Any, history: w.World) -> None:
    fc = (await _get(api, "pressure", cell_m=250)).json()
    per_space = w.space_minutes(history)
    points = {sid: Point(xy) for f in history.facilities.values() for sid, xy in f.points.items()}
    points.update({f.id: Point(f.entrance) for f in history.facilities.values() if f.counted})
    assert sum(f["properties"]["spaces"] for f in fc["features"]) == 6 + 4 + 40
    for feature in fc["features"]:
        square = shape(feature["geometry"])
        members = [key for key, p in points.items() if square.contains(p)]
        assert members, feature
        data = full = known = occ = 0
        for i in range(len(per_space[members[0]])):
            k = sum(per_space[x][i][0] for x in members)
            o = sum(per_space[x][i][1] for x in members)
            known, occ = known + k, occ + o
            if k:
                data += 1
                full += o * 100 >= 85 * k
        _close(feature["properties"]["full_share"], full / data if data else None, feature["id"])
        _close(feature["properties"]["mean_occupancy"], occ / known if known else None, feature["id"])


async def test_csv_has_a_bom_and_the_json_figures(api: Any) -> None:
    as_json = (await _get(api, "utilization", by="facility")).json()
    response = await _get(api, "utilization", by="facility", format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["key"] for r in rows] == [i["key"] for i in as_json]
    assert [float(r["mean_occupancy"]) for r in rows] == [i["mean_occupancy"] for i in as_json]
    priced = await _get(api, "pricing", format="csv")
    names = {r["facility_name"] for r in csv.DictReader(io.StringIO(priced.content.decode("utf-8-sig")))}
    assert names == {"F1 名", "F2 名", "F3 名"}


async def test_lists_follow_next_links(api: Any) -> None:
    client, headers, _ = api
    seen: list[tuple[str, str]] = []
    url: httpx.URL | None = httpx.URL("/v1/management/pricing", params={**PERIOD, "limit": 5})
    total = None
    while url is not None:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200
        total = int(response.headers["X-Total-Count"])
        seen += [(i["facility_id"], i["band"]) for i in response.json()]
        link = response.headers.get("link")
        url = httpx.URL(link.split(";")[0].strip("<>")) if link else None
    assert total == 12
    assert sorted(seen) == sorted(set(seen))
    assert len(seen) == 12


def _report(settings: Settings, *args: str) -> list[dict[str, str]]:
    env = {**os.environ, "CITYPARK_DATABASE_URL": settings.database_url}
    out = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "pricing", "report",
                          "--since", w.A.isoformat(), "--until", w.B.isoformat(), *args],
                         capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(out.stdout.decode("utf-8-sig"))))


async def test_pricing_report_is_the_endpoint_and_records_once_per_period(api: Any) -> None:
    settings = api[2]
    served = (await _get(api, "pricing", format="csv")).content.decode("utf-8-sig")
    assert _report(settings) == list(csv.DictReader(io.StringIO(served)))
    moved = [r for r in _report(settings, "--record") if r["recommended_fee"] and float(r["change"])]
    assert moved, "the world should move F1's fee in some band"
    after = {(r["facility_id"], r["band"]): r for r in _report(settings)}
    for r in moved:
        again = after[(r["facility_id"], r["band"])]
        assert float(again["change"]) == 0.0
        assert "per period" in again["reason"]
        assert float(again["current_fee"]) == float(r["recommended_fee"])


@pytest.mark.parametrize("path", ["utilization", "sharing", "pricing", "pressure"])
@pytest.mark.parametrize("params", [{"until": "0001-01-06T00:02:00Z"}, {"since": "9999-12-31T23:00:00Z"},
                                    {"since": "1999-12-31T00:00:00+08:00", "until": "2000-01-02T00:00:00Z"}])
async def test_periods_outside_the_calendar_are_422(api: Any, path: str, params: dict[str, str]) -> None:
    """schemathesis found `until=0001-01-06T00:02:00Z`: the default since (until − 28 days)
    fell before year 1 and answered 500."""
    client, headers, _ = api
    response = await client.get(f"/v1/management/{path}", params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert "between 2000-01-01 and 3000-01-01" in response.json()["detail"]
