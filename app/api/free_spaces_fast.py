"""``FreeSpacesFastPath``: the hot request of ``GET /v1/spaces/free`` answered in front of the router.

``GET /v1/spaces/free?lat=&lon=[&limit=&radius_m=&accessible=&ev=]`` in JSON is answered straight
from the process's free-space index (``app.state.matching``), without FastAPI's parameter and
dependency machinery, which costs more than the answer. Only what the route would accept with
the same meaning is handled; anything else (GeoJSON, unknown or odd parameters, an index not yet
loaded) falls through to the route, which validates and answers. It sits inside CORS and the
rate limit, like ``app.api.facility_cache.FastPath``.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

PATH = "/v1/spaces/free"
KEYS = {"lat", "lon", "limit", "radius_m", "accessible", "ev", "format"}
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_BOOL = {"true": True, "false": False, "1": True, "0": False}
_HEADERS = [(b"content-type", b"application/json")]


class FreeSpacesFastPath:
    def __init__(self, app: ASGIApp, *, owner: FastAPI) -> None:
        self.app, self.owner = app, owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            body = self.answer(scope["query_string"])
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def answer(self, raw: bytes) -> bytes | None:
        """The JSON body from the index, or None to leave the request to the route."""
        runtime = getattr(self.owner.state, "matching", None)
        if runtime is None or not runtime.ready:
            return None
        query = parse(raw.decode("latin-1"), self.owner.state.settings)
        return None if query is None else runtime.free_spaces_json(**query)


def parse(raw: str, settings: Any) -> dict[str, Any] | None:
    """The index query for a plain, valid JSON request; None for anything else."""
    if "%" in raw or "+" in raw:  # escaped: let the standard parser unquote
        pairs = parse_qsl(raw, keep_blank_values=True)
    else:  # the common case, split as parse_qsl would
        pairs = [(k, v) for k, _, v in (p.partition("=") for p in raw.split("&") if p)]
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= KEYS or params.get("format", "json") != "json":
        return None
    lat, lon = _float(params.get("lat"), -90, 90), _float(params.get("lon"), -180, 180)
    radius = _float(params.get("radius_m", str(settings.default_radius_m)), 0, settings.max_radius_m)
    limit = params.get("limit", "10")
    flags = [_BOOL.get(params.get(k, "false").lower()) for k in ("accessible", "ev")]
    if None in (lat, lon, radius) or not limit.isdigit() or not 1 <= int(limit) <= 100 or None in flags:
        return None
    if radius == 0:
        return None
    return {"lat": lat, "lon": lon, "limit": int(limit), "radius_m": radius,
            "accessible": flags[0], "ev": flags[1]}


def _float(text: str | None, lo: float, hi: float) -> float | None:
    if text is None or not _FLOAT.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) and lo <= value <= hi else None
