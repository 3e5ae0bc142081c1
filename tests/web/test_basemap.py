"""Issue 18 in the browser: the offline base map with its names, facility names at close zoom,
the search box finding 站前广场, 禁停 / closed / unknown told apart, and a click (on a facility
too) setting the driver's point that the search then says it used. Screenshots under
``test-output/web/``."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from app.core.settings import Settings
from app.demo import basemap
from tests.conftest import make_committed_key
from tests.web.conftest import WebPage, wait_for

pytestmark = pytest.mark.slow

VISIBLE_LABELS_JS = """(kind) => Array.from(document.querySelectorAll(`.cp-base-label[data-kind='${kind}']`))
  .filter((e) => e.closest('.leaflet-marker-icon').style.visibility !== 'hidden')
  .map((e) => e.dataset.name)"""


async def sql(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_base_map_draws_the_district_with_its_names(web: WebPage) -> None:
    expected = {f["properties"]["name"]: f["properties"]["kind"] for f in basemap.build()["features"]}
    await web.open("/?lat=41.1110&lon=122.9950&z=15.5")
    await wait_for(web.page, "Number(document.body.dataset.basemap) > 0")
    assert int(await web.dataset("basemap") or 0) == len(expected)
    assert await web.page.locator("path.cp-area-park").count() == 2
    assert await web.page.locator("path.cp-area-square").count() == 3
    assert await web.page.locator("path.cp-street").count() == 2
    streets = await web.page.evaluate(VISIBLE_LABELS_JS, "street")
    squares = await web.page.evaluate(VISIBLE_LABELS_JS, "square")
    assert {"二一九路", "五一路"} <= set(streets)
    assert "站前广场" in squares
    # the names sit on the map where the places are: 站前广场's label inside its square
    label = await web.page.locator(".cp-base-label[data-name='站前广场']").bounding_box()
    area = await web.page.evaluate("""() => { const b = window.citypark.basemap.places
        .find((p) => p.name === '站前广场').bounds; const m = window.citypark.map;
        const a = m.latLngToContainerPoint(b.getNorthWest()), c = m.latLngToContainerPoint(b.getSouthEast());
        const r = m.getContainer().getBoundingClientRect(); return [a.x + r.x, a.y + r.y, c.x + r.x, c.y + r.y]; }""")
    assert label is not None
    cx, cy = label["x"] + label["width"] / 2, label["y"] + label["height"] / 2
    assert area[0] <= cx <= area[2]
    assert area[1] <= cy <= area[3]
    await web.shot("18-01-basemap")
    # zoomed out, the small names give way
    await web.page.evaluate("window.citypark.map.setZoom(13.5, {animate: false})")
    assert await web.page.evaluate(VISIBLE_LABELS_JS, "building") == []
    assert web.errors == []


async def test_facility_names_at_close_zoom_and_no_parking_closed_unknown_apart(
    web: WebPage, web_settings: Settings
) -> None:
    await sql(web_settings, "UPDATE facilities SET closed = true WHERE id = 'jh-lot'")
    curb = (await sql(web_settings, "SELECT ST_Y(entrance) AS lat, ST_X(entrance) AS lon FROM facilities "
                                    "WHERE id = 's51-04'"))[0]
    await web.open(f"/?lat={curb['lat']}&lon={curb['lon']}&z=15")
    assert int(await web.dataset("facilityLabels") or 0) == 0  # no names at district zoom
    chip = web.page.locator(".cp-fac[data-id='s51-04']")
    assert (await chip.inner_text()).replace("\n", "").strip() == "禁停"
    assert "cp-no-parking" in (await chip.get_attribute("class") or "")
    await web.shot("18-02-no-parking")
    await web.page.evaluate("window.citypark.map.setZoom(17, {animate: false})")
    await wait_for(web.page, "Number(document.body.dataset.facilityLabels) > 0")
    names = await web.page.locator(".cp-fac-label").all_inner_texts()
    in_view = await sql(web_settings, "SELECT name FROM facilities WHERE id LIKE 's51-0%'")
    assert {r["name"] for r in in_view} & set(names)
    await web.shot("18-03-facility-names")
    # closed (a lot shut by its operator) and unknown (no fresh readings) look different
    await web.page.evaluate("window.citypark.map.setView([41.1268, 123.0108], 15, {animate: false})")
    await wait_for(web.page, "document.querySelector(\".cp-fac[data-id='jh-lot']\")?.dataset.status === 'closed'")
    styles = await web.page.evaluate("""() => ["[data-id='jh-lot']", "[data-status='unknown']"].map((sel) => {
        const el = document.querySelector(`.cp-fac${sel}`); const s = getComputedStyle(el);
        return [el.dataset.status, s.backgroundColor, s.borderStyle, el.querySelector('.cp-free').textContent]; })""")
    (closed_status, closed_bg, closed_border, closed_text) = styles[0]
    (unknown_status, unknown_bg, unknown_border, unknown_text) = styles[1]
    assert (closed_status, unknown_status) == ("closed", "unknown")
    assert closed_bg != unknown_bg
    assert closed_border != unknown_border
    assert (closed_text, unknown_text) == ("关", "?")
    await web.shot("18-04-closed-vs-unknown")
    assert web.errors == []


async def test_search_box_finds_zhanqian_square(web: WebPage) -> None:
    await web.open()
    await web.page.locator("#search").fill("站前广场")
    await wait_for(web.page, "Number(document.body.dataset.searchResults) > 0")
    hits = await web.page.locator(".cp-search-hit").all_inner_texts()
    assert hits[0] == "站前广场 · 广场"  # the square itself first, then its car park
    assert "站前广场停车场 · 停车" in hits
    await web.shot("18-05-search")
    await web.page.locator(".cp-search-hit", has_text="站前广场停车场").click()
    await wait_for(web.page, "document.getElementById('detail').dataset.loaded === 'true'")
    assert await web.page.locator("#detail-name").inner_text() == "站前广场停车场"
    assert await web.dataset("searchPicked") == "zqgc-lot"
    centre = await web.page.evaluate("(() => { const c = window.citypark.map.getCenter(); return [c.lat, c.lng]; })()")
    lot = await (await web.page.context.request.get(web.base + "/v1/facilities/zqgc-lot")).json()
    assert abs(centre[0] - lot["lat"]) < 1e-4
    assert abs(centre[1] - lot["lon"]) < 1e-4
    await web.shot("18-06-search-picked")
    await web.page.locator("#search").fill("不存在的地方")
    await wait_for(web.page, "document.body.dataset.searchResults === '0'")
    assert await web.page.locator(".cp-search-none").inner_text() == "没有找到"
    assert web.errors == []


async def test_a_click_on_a_facility_sets_the_point_the_search_uses(web: WebPage, web_settings: Settings) -> None:
    driver = await make_committed_key(web_settings, "driver")
    await web.open("/?lat=41.1068&lon=122.9952&z=16.5")
    assert await web.dataset("pointSource") == "centre"
    assert (await web.page.locator("#driver-point").inner_text()).startswith("地图中心")
    await web.page.locator(".cp-fac[data-id='zqgc-lot']").click()
    await wait_for(web.page, "document.body.dataset.pointSource === 'clicked'")
    await wait_for(web.page, "document.getElementById('detail').dataset.loaded === 'true'")
    lat, lon = map(float, (await web.dataset("point") or "").split(","))
    lot = await (await web.page.context.request.get(web.base + "/v1/facilities/zqgc-lot")).json()
    assert abs(lat - lot["lat"]) < 3e-4
    assert abs(lon - lot["lon"]) < 3e-4
    assert await web.page.locator("path.cp-point").count() == 1
    assert (await web.page.locator("#driver-point").inner_text()).startswith("您点击的位置")
    await web.page.locator("#driver-key").fill(driver["Authorization"].removeprefix("Bearer "))
    await web.page.locator("#find-space").click()
    await wait_for(web.page, "document.getElementById('driver-used').textContent.length > 0")
    used = await web.page.locator("#driver-used").inner_text()
    assert used == f"查找时使用：您点击的位置 {lat:.5f}, {lon:.5f}"
    rows = await sql(web_settings, "SELECT lat, lon FROM assignments ORDER BY created_at DESC LIMIT 1")
    if rows:  # a held space (or, nothing fresh in this database, none): the request carried the point
        assert (round(rows[0]["lat"], 5), round(rows[0]["lon"], 5)) == (round(lat, 5), round(lon, 5))
    await web.shot("18-07-point-used")
    assert web.errors == [] or all("409" in e for e in web.errors), web.errors


def test_static_base_map_is_what_the_demo_data_draws() -> None:
    stored = json.loads(basemap.OUT.read_text(encoding="utf-8"))
    assert stored == json.loads(json.dumps(basemap.build(), ensure_ascii=False))
