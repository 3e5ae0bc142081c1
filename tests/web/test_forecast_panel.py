"""The facility panel shows the next two hours' forecast with its interval shaded (issue 17)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core.settings import Settings
from tests.conftest import poll
from tests.web.conftest import WebPage, free_port, process, settings_env, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def server(web_settings: Settings, web_logs: Path) -> AsyncIterator[str]:
    """The API as in tests/web/conftest.py, recomputing its forecast board every second."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", "app.api.main:app_factory",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    env = settings_env(web_settings) | {"CITYPARK_FORECAST_BOARD_S": "1"}
    with process(args, env, web_logs / "server-forecast.log"):
        async def up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{base}/healthz")).status_code == 200
            return False

        await poll(up, timeout=30, interval=0.1)
        yield base


async def test_the_panel_draws_the_forecast_band(web: WebPage, web_settings: Settings) -> None:
    conn = await asyncpg.connect(web_settings.asyncpg_dsn)
    try:
        fid, cap = await conn.fetchrow("SELECT id, capacity FROM facilities WHERE counted ORDER BY id LIMIT 1")
        # a week of gate counts every 15 minutes, busy by day: a weekly profile to forecast from
        await conn.execute("""
            INSERT INTO count_events (facility_id, observed_at, free, total)
            SELECT $1, t, greatest(0, least($2, round(
                $2 * (0.55 + 0.4 * cos(extract(epoch FROM t) / 86400 * 2 * pi())))))::int, $2
            FROM generate_series(now() - interval '8 days', now() - interval '1 minute', interval '15 minutes') t
            ON CONFLICT DO NOTHING""", fid, cap)
    finally:
        await conn.close()
    async def board_has_it() -> bool:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{web.base}/v1/facilities/{fid}/forecast")
        return r.status_code == 200 and r.json()["model"] == "weekly_profile"

    await poll(board_has_it, timeout=30, interval=0.2)
    await web.open()
    await web.page.locator(f'.cp-fac[data-id="{fid}"]').click()
    model = await wait_for(web.page, "document.getElementById('detail-forecast').dataset.model", timeout=20)
    assert model == "weekly_profile"
    band = web.page.locator("#detail-forecast polygon.band")
    assert await band.count() == 1
    points = (await band.get_attribute("points") or "").split()
    assert len(points) == 16  # eight horizons, upper and lower edge
    assert await web.page.locator("#detail-forecast polyline.line").count() == 1
    await web.shot("forecast-panel")
    assert not [e for e in web.errors if "forecast" in e]
