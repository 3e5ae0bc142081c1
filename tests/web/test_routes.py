"""The map's files over ASGI (no browser): the page, its config, vendored Leaflet, no CDN."""

from __future__ import annotations

import json
import re

import httpx

from app.core.settings import Settings
from tests.conftest import app_client


async def test_page_and_every_file_it_loads_are_served_locally(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/vendor/leaflet/leaflet.js" in refs
    assert not [r for r in refs if r.startswith(("http:", "https:", "//"))]  # no CDN at run time
    modules = ["/static/js/main.js"]
    for path in [r for r in refs if r.startswith("/")] + modules:
        response = await client.get(path)
        assert response.status_code == 200, path
        modules += [f"/static/js/{m}" for m in re.findall(r'from "\./([\w.]+)"', response.text)]
    assert len(set(modules)) >= 6  # main.js and the modules it imports, all served


async def test_config_js_carries_the_tile_url_setting(db_settings: Settings) -> None:
    settings = db_settings.model_copy(update={"tile_url": "https://tiles.example/{z}/{x}/{y}.png"})
    async with app_client(settings) as client:
        response = await client.get("/config.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    prefix = "window.CITYPARK_CONFIG = "
    assert response.text.startswith(prefix)
    config = json.loads(response.text.removeprefix(prefix).strip().rstrip(";"))
    assert config["tile_url"] == "https://tiles.example/{z}/{x}/{y}.png"
    assert config["timezone"] == settings.timezone


async def test_vendored_leaflet_keeps_its_license(client: httpx.AsyncClient) -> None:
    css = await client.get("/static/vendor/leaflet/leaflet.css")
    assert css.status_code == 200
    for image in re.findall(r"url\(images/([\w.-]+)\)", css.text):
        assert (await client.get(f"/static/vendor/leaflet/images/{image}")).status_code == 200
    license_text = (await client.get("/static/vendor/leaflet/LICENSE")).text
    assert "BSD 2-Clause License" in license_text
