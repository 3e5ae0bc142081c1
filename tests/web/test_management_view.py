"""The management view (管理) in a real browser: the pressure grid, a facility's weekday × hour
heat table, the pricing table, the time range and a CSV download; screenshots under
``test-output/web/``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import asyncpg
import httpx
import pytest

from app.core.settings import Settings
from tests.conftest import make_committed_key
from tests.web.conftest import WebPage, wait_for

pytestmark = pytest.mark.slow

# ten days of events on the spaces of three sensor facilities, one of them nearly always full
HISTORY = """
INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied)
SELECT 'web-' || s.id, t, NULL, s.id,
       random() < CASE WHEN s.facility_id = $1 THEN 0.97 ELSE 0.4 END
FROM spaces s
CROSS JOIN generate_series(date_trunc('hour', now()) - interval '10 days', now() - interval '2 hours',
                           interval '45 minutes') AS t
WHERE s.facility_id = ANY($2::text[]) AND NOT s.no_parking
ON CONFLICT DO NOTHING
"""


async def _seed(settings: Settings) -> list[str]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch("SELECT id FROM facilities f WHERE NOT counted AND EXISTS "
                                "(SELECT 1 FROM spaces s WHERE s.facility_id = f.id) ORDER BY capacity DESC LIMIT 3")
        ids = [r["id"] for r in rows]
        await conn.execute(HISTORY, ids[0], ids)
        return ids
    finally:
        await conn.close()


async def test_management_view(web: WebPage, web_settings: Settings) -> None:
    ids = await _seed(web_settings)
    key = await make_committed_key(web_settings, "manager")
    await web.open()
    await web.page.locator('.tab[data-tab="management"]').click()
    await web.shot("20-management-login")
    await web.page.fill("#mgmt-key", key["Authorization"].removeprefix("Bearer "))
    await web.page.click("#mgmt-enter")
    await wait_for(web.page, "Number(document.body.dataset.heatCells) > 0", timeout=60)
    cells = int(await web.dataset("pressureCells") or 0)
    assert cells > 0
    assert await web.page.locator("path.cp-pressure").count() == cells
    assert int(await web.dataset("pricingRows") or 0) >= 3 * 4  # three facilities × four bands with data
    # the heat table of the busiest facility is what the API says
    await web.page.select_option("#mgmt-facility", ids[0])
    await wait_for(web.page, "(arg) => document.querySelector('#mgmt-facility').value === arg", ids[0])
    period = await web.page.evaluate("window.citypark.management.period()")
    async with httpx.AsyncClient() as client:
        heat = (await client.get(f"{web.base}/v1/management/facilities/{ids[0]}/heat", params=period,
                                 headers=key)).json()
    want = {f"{c['weekday']}:{c['hour']}": str(round(c["occupancy"] * 100))
            for c in heat["cells"] if c["occupancy"] is not None}
    await wait_for(web.page, "document.querySelectorAll('#mgmt-heat td[title]').length === 7 * 24")
    shown = await web.page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#mgmt-heat tr')].slice(1)
        .flatMap((tr, w) => [...tr.querySelectorAll('td')].map((td, h) => [`${w + 1}:${h}`, td.textContent]))
        .filter(([, v]) => v !== ''))""")
    assert shown == want
    assert max(int(v) for v in shown.values()) >= 90
    await web.shot("21-management")
    # pricing rows for the full facility ask for a higher fee
    reasons = await web.page.locator("#mgmt-pricing tr.up").count()
    assert reasons >= 1
    async with web.page.expect_download() as download_info:
        await web.page.click("#mgmt-csv-pricing")
    download = await download_info.value
    content = _read(await download.path())
    assert content.startswith("\ufeff".encode())
    assert b"facility_id,facility_name,band" in content
    # a shorter range asks again with it
    until = datetime.fromisoformat(period["until"].replace("Z", "+00:00"))
    await web.page.fill("#mgmt-since", (until - timedelta(days=2)).date().isoformat())
    loaded = await web.dataset("mgmtLoaded")
    async with web.page.expect_request(lambda r: "/v1/management/pressure" in r.url) as request:
        await web.page.click("#mgmt-apply")
    assert f"since={(until - timedelta(days=2)).date().isoformat()}" in unquote((await request.value).url)
    await wait_for(web.page, "(n) => Number(document.body.dataset.mgmtLoaded) > n", float(loaded))
    await web.page.click("#lang-toggle")
    await wait_for(web.page, "document.querySelector('.tab[data-tab=\"management\"]').textContent === 'Management'")
    await web.shot("22-management-en")
    assert not web.errors, web.errors


def _read(path: Any) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
