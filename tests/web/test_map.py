"""The web map in a real browser: markers per facility, live numbers over MQTT, the driver's
held space, the enforcement view; a screenshot of each step under ``test-output/web/``."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as mqtt
import pytest

from app.core.mqtt_url import parse_mqtt_url
from app.core.settings import Settings
from tests.conftest import make_committed_key, poll
from tests.web.conftest import WebPage, wait_for

pytestmark = pytest.mark.slow

MARKERS_JS = "Array.from(document.querySelectorAll('.cp-fac')).map((e) => [e.dataset.id, e.dataset.status])"


async def fetch_json(url: str, headers: dict[str, str] | None = None) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def sql(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def sensors_of(settings: Settings, facility_id: str) -> list[str]:
    rows = await sql(settings, """
        SELECT se.id FROM sensors se JOIN spaces sp ON sp.id = se.space_id
        WHERE sp.facility_id = $1 AND NOT sp.no_parking ORDER BY se.id""", facility_id)
    return [r["id"] for r in rows]


async def click_near(web: WebPage, lat: float, lon: float, dy: int = 22) -> None:
    """Click the map just below (lat, lon): a chosen point, not the marker drawn there."""
    point = await web.page.evaluate("([lat, lon]) => window.citypark.map.latLngToContainerPoint([lat, lon])",
                                    [lat, lon])
    box = await web.page.locator("#map").bounding_box()
    assert box is not None
    await web.page.mouse.click(box["x"] + point["x"], box["y"] + point["y"] + dy)


def publish(settings: Settings, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish QoS 1 messages and wait until the broker has them."""
    target = parse_mqtt_url(settings.mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if target.username:
        client.username_pw_set(target.username, target.password)
    client.connect(target.host, target.port)
    client.loop_start()
    try:
        for info in [client.publish(topic, json.dumps(body), qos=1) for topic, body in messages]:
            info.wait_for_publish(timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()


def occupancy(settings: Settings, sensor_ids: list[str], *, occupied: bool, at: datetime, seq: int) -> list[Any]:
    root = settings.mqtt_topic_root
    body = {"occupied": occupied, "observed_at": at.isoformat(), "seq": seq}
    return [(f"{root}/tiedong-city/sensors/{sid}/occupancy", body) for sid in sensor_ids]


async def test_page_shows_a_marker_per_facility_and_its_details(
    web: WebPage, web_settings: Settings
) -> None:
    await web.open()
    query = await web.dataset("facilitiesQuery")
    assert query
    assert query.startswith("/v1/facilities?")
    api = await fetch_json(web.base + query)
    on_page = dict(await web.page.evaluate(MARKERS_JS))
    in_db = await sql(web_settings, "SELECT id FROM facilities")
    assert len(on_page) == len(api) == len(in_db) > 0  # the whole district is in the first view
    assert on_page == {f["id"]: f["status"] for f in api}
    await web.shot("01-map")

    info = await fetch_json(f"{web.base}/v1/facilities/sfgc-lot")
    await web.page.locator('.cp-fac[data-id="sfgc-lot"]').click()
    await wait_for(web.page, "document.getElementById('detail').dataset.loaded === 'true'")
    detail = web.page.locator("#detail")
    assert await web.page.locator("#detail-name").inner_text() == info["name"]
    facts = await web.page.locator("#detail-facts").inner_text()
    assert info["fee"] in facts
    assert info["opening_hours"] in facts
    assert "限时 240 分钟" in facts  # the lot's time-limit rule, in Chinese by default
    assert (await web.page.locator("#detail-numbers .of").inner_text()).strip() == f"/ {info['total']}"
    await web.shot("02-facility-detail")

    await web.page.locator("#lang-toggle").click()
    await wait_for(web.page, "document.documentElement.lang === 'en'")
    assert await web.page.locator('.topbar [data-i18n="title"]').inner_text() == "City Smart Parking"
    assert "Fees" in await detail.inner_text()
    assert await web.page.locator("#find-space").inner_text() == "Find me a space"
    await web.shot("03-english")
    assert web.errors == []


async def test_occupancy_over_mqtt_changes_the_number_without_reload(
    web: WebPage, web_settings: Settings, ingest: subprocess.Popen[bytes]
) -> None:
    sensors = await sensors_of(web_settings, "s219-00")
    curb = await fetch_json(f"{web.base}/v1/facilities/s219-00")
    await web.open(f"/?poll=500&lat={curb['lat']}&lon={curb['lon']}")
    await web.page.evaluate("window.__sameDocument = true")
    marker = web.page.locator('.cp-fac[data-id="s219-00"]')
    before = await marker.get_attribute("data-free")
    assert before != str(len(sensors))

    # History needs a past: the spell of free spaces began 20 min ago (within stale_after_s).
    all_free = occupancy(web_settings, sensors, occupied=False, at=datetime.now(UTC) - timedelta(minutes=20), seq=1)
    await shows_free(web, web_settings, ingest, all_free, "s219-00", len(sensors))
    await web.shot("04-mqtt-all-free")

    one_taken = occupancy(web_settings, sensors[:1], occupied=True, at=datetime.now(UTC), seq=2)
    await shows_free(web, web_settings, ingest, one_taken, "s219-00", len(sensors) - 1)
    assert await web.page.evaluate("window.__sameDocument") is True
    assert await marker.get_attribute("data-status") == "spacesAvailable"

    await marker.click()
    await wait_for(web.page, "document.querySelectorAll('#detail-chart polyline').length === 1")
    points = await web.page.locator("#detail-chart polyline").get_attribute("points")
    assert points is not None
    assert len(points.split()) >= 2
    assert await web.page.locator("#detail-free").inner_text() == str(len(sensors) - 1)
    await web.shot("05-mqtt-one-taken-with-history")
    assert web.errors == []


async def shows_free(
    web: WebPage, settings: Settings, ingest: subprocess.Popen[bytes], messages: list[Any],
    facility_id: str, free: int,
) -> None:
    """Publish (again every second: re-delivery is idempotent, and the worker may still be
    subscribing) until the page's marker shows ``free``."""
    last = 0.0

    async def shown() -> bool:
        nonlocal last
        assert ingest.poll() is None, "citypark ingest exited"
        if time.monotonic() - last > 1.0:
            await asyncio.to_thread(publish, settings, messages)
            last = time.monotonic()
        value = await web.page.locator(f'.cp-fac[data-id="{facility_id}"]').get_attribute("data-free")
        return value == str(free)

    await poll(shown, timeout=20, interval=0.1)


async def test_find_me_a_space_shows_the_held_space(web: WebPage, web_settings: Settings) -> None:
    operator = await make_committed_key(web_settings, "operator", "tiedong-city")
    driver = await make_committed_key(web_settings, "driver")
    sensors = await sensors_of(web_settings, "s51-00")
    observed = datetime.now(UTC).isoformat()
    async with httpx.AsyncClient(base_url=web.base, headers=operator) as client:
        for sid in sensors:
            response = await client.post(f"/v1/operators/tiedong-city/sensors/{sid}/occupancy",
                                         json={"occupied": False, "observed_at": observed, "seq": 1})
            assert response.status_code == 202, response.text

    curb = await fetch_json(f"{web.base}/v1/facilities/s51-00")
    await web.open(f"/?poll=500&z=17&lat={curb['lat']}&lon={curb['lon']}")
    # Zoomed in, the map shows the free spaces themselves (once the matching index has them).
    await wait_for(web.page, "Number(document.body.dataset.freeSpaces) > 0", timeout=20)
    assert await web.page.locator("path.cp-space").count() == int(await web.dataset("freeSpaces") or 0)
    await web.shot("06-free-spaces-zoomed-in")
    await web.page.locator("#driver-key").fill(driver["Authorization"].removeprefix("Bearer "))
    await click_near(web, curb["lat"], curb["lon"])
    await web.page.locator("#find-space").click()
    await wait_for(web.page, "!document.getElementById('assignment').hidden"
                             " || !document.getElementById('driver-error').hidden")
    assert await web.page.locator("#driver-error").is_hidden(), await web.page.locator("#driver-error").inner_text()

    rows = await sql(web_settings, "SELECT a.id, space_id, status, s.facility_id FROM assignments a "
                                   "JOIN spaces s ON s.id = a.space_id ORDER BY a.created_at DESC LIMIT 1")
    assert rows
    assert rows[0]["status"] == "held"
    assert rows[0]["facility_id"] == "s51-00"
    assert await web.page.locator("#asg-space").inner_text() == rows[0]["space_id"]
    assert await web.page.locator("#asg-status").inner_text() == "保留中"
    countdown = await web.page.locator("#asg-countdown").inner_text()
    assert re.fullmatch(r"\d\d:\d\d", countdown), countdown
    minutes, seconds = map(int, countdown.split(":"))
    assert web_settings.hold_seconds - 30 <= minutes * 60 + seconds <= web_settings.hold_seconds
    assert await web.page.locator("path.cp-held").count() == 1
    # the held space no longer counts as free on the map
    await wait_for(web.page, "([id, n]) => document.querySelector(`.cp-fac[data-id='${id}']`).dataset.free === n",
                   ["s51-00", str(len(sensors) - 1)])
    await web.shot("07-find-me-a-space")

    # The driver, now 1 km away (as the app reports), loses the space to someone else.
    held = rows[0]["space_id"]
    await someone_else_takes(web.base, driver, operator, rows[0]["id"], held, web_settings,
                             far=(curb["lat"] + 0.01, curb["lon"]))
    await wait_for(web.page, "(held) => document.getElementById('asg-space').textContent !== held", held)
    now_held = await sql(web_settings, "SELECT space_id, status FROM assignments WHERE id = $1", rows[0]["id"])
    assert now_held[0]["status"] == "reassigned"
    assert await web.page.locator("#asg-space").inner_text() == now_held[0]["space_id"] != held
    assert await web.page.locator("#asg-status").inner_text() == "已改派"
    assert f"改派至 {now_held[0]['space_id']}" in await web.page.locator("#asg-events").inner_text()
    await web.shot("08-reassigned")

    await web.page.locator("#asg-cancel").click()
    await wait_for(web.page, "document.getElementById('assignment').dataset.status === 'cancelled'")
    assert await web.page.locator("#asg-cancel").is_hidden()
    cancelled = await sql(web_settings, "SELECT status FROM assignments WHERE id = $1", rows[0]["id"])
    assert cancelled[0]["status"] == "cancelled"
    assert web.errors == []


async def someone_else_takes(
    base: str, driver: dict[str, str], operator: dict[str, str], assignment_id: Any, space_id: str,
    settings: Settings, *, far: tuple[float, float],
) -> None:
    (sensor,) = await sql(settings, "SELECT id FROM sensors WHERE space_id = $1", space_id)
    async with httpx.AsyncClient(base_url=base) as client:
        moved = await client.post(f"/v1/assignments/{assignment_id}/position",
                                  json={"lat": far[0], "lon": far[1]}, headers=driver)
        assert moved.status_code == 200, moved.text
        taken = await client.post(f"/v1/operators/tiedong-city/sensors/{sensor['id']}/occupancy", headers=operator,
                                  json={"occupied": True, "observed_at": datetime.now(UTC).isoformat(), "seq": 2})
        assert taken.status_code == 202, taken.text


async def insert_violations(settings: Settings) -> list[asyncpg.Record]:
    """One car on the no-parking stretch for 40 min, one overstay on a curb for 25 min."""
    return await sql(settings, """
        INSERT INTO violations (space_id, facility_id, kind, stay_since, started_at, limit_minutes, geom)
        (SELECT id, facility_id, 'no_parking', now() - interval '45 minutes', now() - interval '40 minutes',
                NULL, geom FROM spaces WHERE facility_id = 's51-04' ORDER BY id LIMIT 1)
        UNION ALL
        (SELECT id, facility_id, 'overstay', now() - interval '145 minutes', now() - interval '25 minutes',
                120, geom FROM spaces WHERE facility_id = 's219-05' ORDER BY id LIMIT 1)
        RETURNING id, space_id, kind""")


async def test_enforcement_view_shows_hotspots_and_violations(web: WebPage, web_settings: Settings) -> None:
    inserted = await insert_violations(web_settings)
    key = await make_committed_key(web_settings, "enforcement")
    await web.open()
    await web.page.locator('.tab[data-tab="enforcement"]').click()

    await web.page.locator("#enf-key").fill("cpk_not_a_key")
    await web.page.locator("#enf-enter").click()
    await wait_for(web.page, "!document.getElementById('enf-error').hidden")
    assert await web.page.locator("#enf-error").inner_text() == "密钥无效或无此权限"
    assert await web.page.locator("#enf-main").is_hidden()
    assert all("401" in e for e in web.errors), web.errors  # the browser logs the refused request
    web.errors.clear()

    await web.page.locator("#enf-key").fill(key["Authorization"].removeprefix("Bearer "))
    await web.page.locator("#enf-enter").click()
    await wait_for(web.page, "Number(document.body.dataset.hotspotCells) > 0")
    active = await fetch_json(f"{web.base}/v1/enforcement/violations?active=true", key)
    items = web.page.locator("#vio-list .vio")
    assert await items.count() == len(active) >= len(inserted)
    listed = await items.all_inner_texts()
    for row in inserted:
        text = next(t for t in listed if row["space_id"] in t)
        expected = "禁停区域停车" if row["kind"] == "no_parking" else "超时停车"
        assert expected in text
    no_parking = next(t for t in listed if inserted[0]["space_id"] in t)
    assert re.search(r"已持续 (40|41) 分钟", no_parking), no_parking
    cells = int(await web.dataset("hotspotCells") or 0)
    assert await web.page.locator("path.cp-hot").count() == cells
    assert await web.page.locator("path.cp-vio").count() == len(active)
    await wait_for(web.page, "document.querySelectorAll('#patrol-list li').length > 0")
    assert await web.page.locator("#patrol-list li").count() == len(active)
    await web.shot("09-enforcement")

    async with web.page.expect_request(lambda r: "/v1/enforcement/hotspots" in r.url) as request:
        await web.page.locator("#hot-window").select_option("3600")
    params = httpx.URL((await request.value).url).params
    window = datetime.fromisoformat(params["until"]) - datetime.fromisoformat(params["since"])
    assert window == timedelta(hours=1)
    await wait_for(web.page, "Number(document.body.dataset.hotspotCells) > 0")
    await web.shot("10-enforcement-last-hour")
    assert web.errors == []


async def test_phone_sized_screen(web: WebPage) -> None:
    await web.page.set_viewport_size({"width": 390, "height": 844})
    await web.open()
    size = await web.page.evaluate(
        "({scroll: document.documentElement.scrollWidth, width: innerWidth, height: innerHeight})")
    assert size["scroll"] <= size["width"]
    map_box = await web.page.locator("#map").bounding_box()
    panel_box = await web.page.locator("#panel").bounding_box()
    assert map_box
    assert panel_box
    assert map_box["width"] == size["width"]
    assert map_box["height"] >= 300
    assert panel_box["y"] >= map_box["y"] + map_box["height"] - 1
    assert panel_box["y"] + panel_box["height"] <= size["height"] + 1
    api = await fetch_json(web.base + (await web.dataset("facilitiesQuery") or ""))
    assert await web.page.locator(".cp-fac").count() == len(api) > 0
    await web.page.locator("#find-space").scroll_into_view_if_needed()
    assert await web.page.locator("#find-space").is_visible()
    await web.shot("11-phone")
    assert web.errors == []


async def test_unreachable_tiles_still_draw_every_layer(web: WebPage) -> None:
    config = await web.page.context.request.get(web.base + "/config.js")
    body = (await config.text()).replace('"tile_url": ""', '"tile_url": "http://tiles.invalid/{z}/{x}/{y}.png"')
    assert "tiles.invalid" in body
    await web.page.route("**/config.js", lambda route: route.fulfill(
        status=200, content_type="text/javascript", body=body))
    await web.page.route("http://tiles.invalid/**", lambda route: route.abort("connectionrefused"))
    await web.open()
    assert await web.page.locator("img.leaflet-tile").count() > 0  # the tile layer is there, failing
    api = await fetch_json(web.base + (await web.dataset("facilitiesQuery") or ""))
    assert await web.page.locator(".cp-fac").count() == len(api) > 0
    assert await web.page.locator("path.cp-outline").count() > 0
    await web.shot("12-no-tiles-reachable")
    assert all("Failed to load resource" in e for e in web.errors), web.errors
