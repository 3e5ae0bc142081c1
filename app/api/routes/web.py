"""The web map: ``/`` serves the page, ``/static`` its files, ``/config.js`` its settings.

The page is plain HTML, CSS and ES modules over the public API; Leaflet is vendored under
``static/vendor/`` (no CDN at run time). Base-map tiles come from ``CITYPARK_TILE_URL``;
when it is empty or unreachable the page still draws every layer on a plain background.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from app.api.deps import SettingsDep
from app.core.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["web"], include_in_schema=False)


def page_config(settings: Settings) -> dict[str, object]:
    """What the page needs to know about this deployment (nothing secret)."""
    return {
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        "timezone": settings.timezone,
        "hold_seconds": settings.hold_seconds,
        "max_radius_m": settings.max_radius_m,
    }


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=NO_CACHE)


@router.get("/config.js")
async def config_js(settings: SettingsDep) -> Response:
    body = "window.CITYPARK_CONFIG = " + json.dumps(page_config(settings), ensure_ascii=False) + ";\n"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=NO_CACHE)

