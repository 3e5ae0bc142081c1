"""Issue 13 item 3: every capped list says so, and a client following ``Link: rel="next"`` to the
end sees each item exactly once (the contract's "Lists" rule).

Each list is walked to its end on data larger than one page; the items are compared with what
the database holds, and with ``X-Total-Count`` where the list sends it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from tests.conftest import app_client, poll

ZQ = (41.1068, 122.9952)  # 站前广场
LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


def next_of(response: httpx.Response) -> str | None:
    """The target of the ``Link`` with ``rel="next"`` (RFC 8288), if any."""
    for target, rel in LINK.findall(response.headers.get("Link", "")):
        if "next" in rel.split():
            return str(target)
    return None


async def walk(client: httpx.AsyncClient, url: str, *, headers: dict[str, str] | None = None,
               items: Callable[[Any], list[Any]] = lambda body: list(body),
               between: Callable[[int], Any] | None = None) -> tuple[list[Any], list[httpx.Response]]:
    """Every item of a list, following ``Link: rel="next"`` from ``url`` to the end."""
    seen: list[Any] = []
    pages: list[httpx.Response] = []
    while url:
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        pages.append(r)
        seen += items(r.json())
        url = next_of(r) or ""
        if url:
            assert url.startswith("/"), url  # root-relative
        if between is not None and url:
            await between(len(pages))
        assert len(pages) < 500, "the walk does not end"
    return seen, pages


def kept_params(first: str, nxt: httpx.Response, *, paging: set[str]) -> None:
    """The next link keeps every other query parameter of the request."""
    link = next_of(nxt)
    assert link, nxt.headers
    mine = {k: v for k, v in parse_qsl(urlsplit(first).query) if k not in paging}
    theirs = {k: v for k, v in parse_qsl(urlsplit(link).query) if k not in paging}
    assert theirs == mine


def once(ids: list[Any]) -> set[Any]:
    assert len(ids) == len(set(ids)), "an item was seen twice"
    return set(ids)


# --- enforcement ---------------------------------------------------------------------------


async def add_violations(db: AsyncSession, n: int, *, active: bool = True, offset_rows: int = 0) -> set[int]:
    """``n`` violations on as many spaces; ten share each start time (ties for the keyset)."""
    ended = "NULL" if active else "now() - interval '1 minute'"
    rows = await db.execute(text(f"""
        INSERT INTO violations (space_id, facility_id, kind, stay_since, started_at, ended_at, limit_minutes, geom)
        SELECT id, facility_id, 'overstay', now() - interval '3 hours',
               now() - make_interval(mins => (row_number() OVER (ORDER BY id))::int % 10 + 5), {ended}, 120, geom
        FROM (SELECT * FROM spaces ORDER BY id OFFSET :o LIMIT :n) s
        RETURNING id"""), {"n": n, "o": offset_rows})
    return set(rows.scalars())


async def test_active_violations_beyond_one_default_page(client: httpx.AsyncClient, db: AsyncSession,
                                                         make_key: Any) -> None:
    made = await add_violations(db, 786)  # the issue's count: the default page holds 500
    officer = await make_key("enforcement")
    url = "/v1/enforcement/violations?active=true"
    rows, pages = await walk(client, url, headers=officer)
    assert len(pages) == 2
    assert len(pages[0].json()) == 500
    assert once([r["id"] for r in rows]) == made
    assert all(p.headers["X-Total-Count"] == "786" for p in pages)
    kept_params(url, pages[0], paging={"cursor", "offset"})
    order = [(r["started_at"], r["id"]) for r in rows]
    assert order == sorted(order, reverse=True)  # newest first across pages


async def test_violations_pages_see_each_once_while_new_ones_start(client: httpx.AsyncClient, db: AsyncSession,
                                                                   make_key: Any) -> None:
    made = await add_violations(db, 240)
    officer = await make_key("enforcement")
    later: set[int] = set()

    async def new_violations_start(_: int) -> None:  # newer than every page: the walk must not repeat
        later.update(await add_violations(db, 7, offset_rows=1000 + len(later)))

    url = "/v1/enforcement/violations?active=true&kind=overstay&limit=50&format=geojson"
    features, pages = await walk(client, url, headers=officer, items=lambda b: b["features"],
                                 between=new_violations_start)
    ids = once([f["properties"]["id"] for f in features])
    assert len(pages) == 5
    assert made <= ids
    assert ids - made <= later


async def test_violations_csv_is_never_capped(client: httpx.AsyncClient, db: AsyncSession, make_key: Any) -> None:
    made = await add_violations(db, 786)
    r = await client.get("/v1/enforcement/violations.csv?active=true&limit=10", headers=await make_key("enforcement"))
    assert r.status_code == 200
    lines = r.text.strip().splitlines()
    assert len(lines) == 1 + len(made)
    assert "Link" not in r.headers


async def test_hotspot_cells_and_patrol_walk_to_the_end(client: httpx.AsyncClient, db: AsyncSession,
                                                        make_key: Any) -> None:
    made = await add_violations(db, 300)
    officer = await make_key("enforcement")
    cells = (await client.get("/v1/enforcement/hotspots?cell_m=10", headers=officer)).json()
    assert len(cells["features"]) > 40
    url = "/v1/enforcement/hotspots?cell_m=10&limit=17"
    features, pages = await walk(client, url, headers=officer, items=lambda b: b["features"])
    assert once([f["id"] for f in features]) == {f["id"] for f in cells["features"]}
    assert sum(f["properties"]["count"] for f in features) == len(made)
    assert {p.headers["X-Total-Count"] for p in pages} == {str(len(cells["features"]))}
    kept_params(url, pages[0], paging={"cursor"})

    url = f"/v1/enforcement/patrol?lat={ZQ[0]}&lon={ZQ[1]}&limit=40"
    stops, pages = await walk(client, url, headers=officer, items=lambda b: b["stops"])
    assert once([s["id"] for s in stops]) == made
    assert len(pages) == 8
    assert pages[0].headers["X-Total-Count"] == "300"
    second = pages[1].json()["start"]
    last_of_first = max(pages[0].json()["stops"], key=lambda s: s["order"])
    assert (second["lat"], second["lon"]) == (last_of_first["lat"], last_of_first["lon"])  # routed on


# --- public availability ---------------------------------------------------------------------


async def test_facilities_walk_in_every_mode(client: httpx.AsyncClient, db: AsyncSession) -> None:
    every = set((await db.execute(text("SELECT id FROM facilities"))).scalars())
    assert len(every) > 12
    for url in ("/v1/facilities?limit=5", f"/v1/facilities?lat={ZQ[0]}&lon={ZQ[1]}&radius_m=5000&limit=4",
                "/v1/facilities?limit=3&format=geojson", "/v1/facilities?limit=2&format=fiware"):
        items: Callable[[Any], list[Any]] = (lambda b: b["features"]) if "geojson" in url else (lambda b: list(b))
        rows, pages = await walk(client, url, items=items)
        ids = [r["id"] for r in rows]
        if "fiware" in url:
            ids = [i.rsplit(":", 1)[-1] for i in ids]
        assert once(ids) == every, url
        assert {p.headers["X-Total-Count"] for p in pages} == {str(len(every))}
        kept_params(url, pages[0], paging={"offset", "limit"})
    named = set((await db.execute(text("SELECT id FROM facilities WHERE name LIKE '%停车场%'"))).scalars())
    assert len(named) > 2
    rows, _ = await walk(client, "/v1/facilities?q=停车场&limit=2")
    assert once([r["id"] for r in rows]) == named


async def test_sensors_rules_forecast_and_ngsi_walk_to_the_end(client: httpx.AsyncClient, db: AsyncSession,
                                                               make_key: Any) -> None:
    facility = await db.scalar(text("SELECT facility_id FROM spaces GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"))
    sensors = set((await db.execute(text("SELECT s.id FROM sensors s JOIN spaces p ON p.id = s.space_id "
                                         "WHERE p.facility_id = :f"), {"f": facility})).scalars())
    rows, pages = await walk(client, f"/v1/facilities/{facility}/sensors?limit=7")
    assert once([r["sensor_id"] for r in rows]) == sensors
    assert len(pages) > 2

    await db.execute(text("INSERT INTO parking_rules (space_id, kind, max_stay_minutes, days, day_mask, start_time, "
                          "end_time) SELECT id, 'time_limit', 60, 'Mo-Su', 127, '08:00', '20:00' FROM spaces "
                          "ORDER BY id LIMIT 25"))
    rules = set((await db.execute(text("SELECT id FROM parking_rules"))).scalars())
    rows, pages = await walk(client, "/v1/admin/rules?limit=4", headers=await make_key("admin"))
    assert once([r["id"] for r in rows]) == rules
    assert pages[0].headers["X-Total-Count"] == str(len(rules))

    url = f"/v1/forecast/near?lat={ZQ[0]}&lon={ZQ[1]}&radius_m=5000&limit=3"
    rows, pages = await walk(client, url)
    assert len(once([r["id"] for r in rows])) == int(pages[0].headers["X-Total-Count"]) > 6
    kept_params(url, pages[0], paging={"offset", "limit"})

    spots = set((await db.execute(text("SELECT id FROM spaces"))).scalars())
    rows, pages = await walk(client, "/ngsi-ld/v1/entities?type=ParkingSpot&limit=500&count=true")
    assert once([r["id"].rsplit(":", 1)[-1] for r in rows]) == spots
    assert pages[0].headers["NGSILD-Results-Count"] == str(len(spots))


# --- free spaces (the in-memory index, and PostGIS before it loads) -------------------------


@pytest.fixture(scope="module")
async def free_db(fresh_db: Callable[..., Any]) -> Settings:
    """Committed: every space reads free, but for every seventh (occupied)."""
    settings: Settings = await fresh_db(batch_window_ms=0)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute("""
            INSERT INTO space_state (space_id, occupied, since, observed_at, last_seen, source)
            SELECT id, (row_number() OVER (ORDER BY id)) % 7 = 0, now(), now(), now(), 'test' FROM spaces
            ON CONFLICT (space_id) DO UPDATE SET occupied = excluded.occupied, last_seen = excluded.last_seen""")
    finally:
        await conn.close()
    return settings


async def _free(settings: Settings, where: str, *args: Any) -> set[str]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch(f"""SELECT s.id FROM spaces s JOIN space_state st ON st.space_id = s.id
                                    WHERE NOT st.occupied AND NOT s.no_parking AND {where}""", *args)
    finally:
        await conn.close()
    return {r["id"] for r in rows}


@pytest.mark.parametrize("source", ["index", "postgis"])
async def test_free_spaces_nearest_first_walk(free_db: Settings, source: str) -> None:
    async with app_client(free_db) as client:
        runtime = client.app.state.matching  # type: ignore[attr-defined]
        await poll(lambda: runtime.ready, timeout=30)
        closed = sorted(runtime.eligibility.current.closed)  # shared lots outside their public hours
        within = await _free(free_db, "ST_DWithin(s.geom::geography, ST_SetSRID(ST_MakePoint($2, $1), 4326)"
                                      "::geography, 300, false) AND s.facility_id <> ALL($3::text[])", *ZQ, closed)
        assert len(within) > 30
        runtime.ready = source == "index"  # not ready: answered by PostGIS
        url = f"/v1/spaces/free?lat={ZQ[0]}&lon={ZQ[1]}&radius_m=300&limit=7"
        rows, pages = await walk(client, url)
        runtime.ready = True
    assert once([r["space_id"] for r in rows]) == within
    distances = [r["distance_m"] for r in rows]
    assert distances == sorted(distances)
    kept_params(url, pages[0], paging={"cursor"})


async def test_free_spaces_in_a_box_walk_with_total(free_db: Settings) -> None:
    box = (122.985, 41.100, 123.005, 41.115)
    async with app_client(free_db) as client:
        runtime = client.app.state.matching  # type: ignore[attr-defined]
        await poll(lambda: runtime.ready, timeout=30)
        closed = sorted(runtime.eligibility.current.closed)  # shared lots outside their public hours
        inside = await _free(free_db, "s.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326) "
                             "AND s.facility_id <> ALL($5::text[])", *box, closed)
        assert len(inside) > 250
        url = f"/v1/spaces/free?bbox={','.join(map(str, box))}&limit=100"
        rows, pages = await walk(client, url)
        features, _ = await walk(client, url + "&format=geojson", items=lambda b: b["features"])
        runtime.ready = False
        from_sql, _ = await walk(client, url.replace("limit=100", "limit=90"))
        runtime.ready = True
    assert once([r["space_id"] for r in rows]) == inside
    assert {p.headers["X-Total-Count"] for p in pages} == {str(len(inside))}
    assert once([f["id"] for f in features]) == inside
    assert once([r["space_id"] for r in from_sql]) == inside


async def test_a_bad_cursor_is_refused(client: httpx.AsyncClient) -> None:
    for url in (f"/v1/spaces/free?lat={ZQ[0]}&lon={ZQ[1]}&cursor=not-a-cursor",
                "/v1/spaces/free?bbox=122.98,41.10,123.0,41.11&cursor=WzEsMl0"):
        r = await client.get(url)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_input"
