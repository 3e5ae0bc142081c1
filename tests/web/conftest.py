"""Browser tests: headless Debian chromium driven by Python's playwright, against the app
served by uvicorn on a free localhost port (a subprocess) over a fresh seeded database.

Never ``playwright install``: the browser is Debian's ``chromium`` (``deploy/local/services.sh``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from app.core.settings import Settings
from tests.conftest import ROOT, RUN_ID, poll

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a ``citypark`` process use ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPARK_")}
    env.update({
        "CITYPARK_DATABASE_URL": settings.database_url,
        "CITYPARK_MQTT_URL": settings.mqtt_url,
        "CITYPARK_MQTT_TOPIC_ROOT": settings.mqtt_topic_root,
        "CITYPARK_RATE_LIMIT": settings.rate_limit,
        "CITYPARK_TILE_URL": settings.tile_url,
        "CITYPARK_DB_POOL_SIZE": str(settings.db_pool_size),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in ``log``; terminated (then killed) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
async def web_settings(fresh_db: Any) -> Settings:
    """A fresh seeded database; no base-map tiles (the page draws on a plain background)."""
    settings: Settings = await fresh_db(tile_url="")
    return settings


@pytest.fixture(scope="module")
def web_logs(output_dir: Path) -> Path:
    path = output_dir / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
async def server(web_settings: Settings, web_logs: Path) -> AsyncIterator[str]:
    """Base URL of the API (and the map) served by uvicorn in a subprocess."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", "app.api.main:app_factory",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    with process(args, settings_env(web_settings), web_logs / "server.log") as proc:
        async def up() -> bool:
            assert proc.poll() is None, (web_logs / "server.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{base}/healthz")).status_code == 200
            return False

        await poll(up, timeout=30, interval=0.1)
        yield base


@pytest.fixture(scope="module")
async def ingest(web_settings: Settings, web_logs: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``citypark ingest`` (issue 3's MQTT worker) on the test database and topic root."""
    args = [sys.executable, "-c", "from app.cli import main; main()", "ingest",
            "--client-id", f"citypark-web-test-{RUN_ID}", "--metrics-port", "0"]
    env = settings_env(web_settings) | {"CITYPARK_MQTT_SESSION_EXPIRY_S": "60"}
    with process(args, env, web_logs / "ingest.log") as proc:
        yield proc


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make services` (deploy/local/services.sh) installs chromium")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@dataclass
class WebPage:
    """A page and what its console reported; ``shot(name)`` saves a screenshot of this step."""

    page: Page
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    async def open(self, path: str = "/") -> None:
        await self.page.goto(self.base + path)
        await self.page.wait_for_function("Number(document.body.dataset.facilityCount) > 0")

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=path)
        return path

    async def dataset(self, key: str) -> str | None:
        value = await self.page.evaluate("(k) => document.body.dataset[k]", key)
        return None if value is None else str(value)


@pytest.fixture
async def web(browser: Browser, server: str, web_logs: Path) -> AsyncIterator[WebPage]:
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    web = WebPage(page=page, base=server, shots=web_logs)
    page.on("console", web.on_console)
    page.on("pageerror", lambda exc: web.errors.append(f"uncaught: {exc}"))
    yield web
    await context.close()


async def wait_for(page: Page, js: str, arg: Any = None, timeout: float = 10.0) -> Any:
    """Wait until the JS expression (a function of ``arg``) is truthy in the page; its value."""
    handle = await page.wait_for_function(js, arg=arg, timeout=timeout * 1000)
    return await handle.json_value()
