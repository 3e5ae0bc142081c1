"""The per-process snapshot of facility availability behind ``GET /v1/facilities``.

``FacilityCache`` holds the latest ``availability.Snapshot``, reloaded when older than
``ttl_s`` (1 s): one aggregate query a second per process instead of one per request; writes
made through this process (operator pushes, inventory) invalidate it.

``FastPath`` is a small ASGI middleware in front of the router that answers the hot request —
``GET /v1/facilities?lat=&lon=[&radius_m=&kind=&limit=]`` in JSON — straight from a fresh
snapshot, without FastAPI's per-request dependency and parameter machinery (which costs more
than the answer itself). It accepts only what the route would accept; anything else (other
formats, unknown or odd parameters, a stale snapshot) falls through to the route, which
validates, answers and refreshes the snapshot. It sits inside the rate limit and CORS.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.availability.service import Snapshot
from app.core.settings import Settings

PATH = "/v1/facilities"
KINDS = {"lot", "garage", "curb"}
MAX_RADIUS_M = 5000.0
MAX_LIMIT = 500
_FLOAT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(r"^\d{1,4}$")


class FacilityCache:
    """The latest snapshot, reloaded when older than ``ttl_s`` (one loader at a time)."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self.value: Snapshot | None = None
        self.loaded_at = 0.0
        self.lock = asyncio.Lock()

    def invalidate(self) -> None:
        self.value = None

    def fresh(self) -> Snapshot | None:
        """The snapshot if younger than ``ttl_s`` (or being refreshed right now), else None."""
        if self.value is not None and (time.monotonic() - self.loaded_at < self.ttl_s or self.lock.locked()):
            return self.value
        return None

    async def get(self, load: Callable[[], Awaitable[Snapshot]]) -> Snapshot:
        if (snap := self.fresh()) is not None:
            return snap  # while another request refreshes, the previous second's is served
        async with self.lock:
            if self.value is None or time.monotonic() - self.loaded_at >= self.ttl_s:
                value = await load()
                self.value, self.loaded_at = value, time.monotonic()
            return self.value


def invalidate(app: Any) -> None:
    """Drop the cached snapshot (after a write this process made)."""
    cache = getattr(app.state, "facility_cache", None)
    if cache is not None:
        cache.invalidate()


class FastPath:
    def __init__(self, app: ASGIApp, *, cache: FacilityCache, settings: Settings) -> None:
        self.app = app
        self.cache = cache
        self.max_radius_m = min(MAX_RADIUS_M, settings.max_radius_m)
        self.default_radius_m = settings.default_radius_m

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            snap = self.cache.fresh()
            query = self.parse(scope["query_string"]) if snap is not None else None
            if snap is not None and query is not None:
                body = orjson.dumps(snap.rows(snap.near(**query)))
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def parse(self, raw: bytes) -> dict[str, Any] | None:
        """The query's arguments for ``Snapshot.near``, or None to leave it to the route."""
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        params = dict(pairs)
        if len(params) != len(pairs) or not set(params) <= {"lat", "lon", "radius_m", "kind", "limit", "format"}:
            return None
        lat, lon = _float(params.get("lat"), -90, 90), _float(params.get("lon"), -180, 180)
        radius = _float(params.get("radius_m", str(self.default_radius_m)), 0, self.max_radius_m)
        limit = params.get("limit", "100")
        kind = params.get("kind")
        if lat is None or lon is None or radius is None or radius <= 0 or params.get("format", "json") != "json":
            return None
        if not _INT.match(limit) or not 1 <= int(limit) <= MAX_LIMIT or (kind is not None and kind not in KINDS):
            return None
        return {"lat": lat, "lon": lon, "radius_m": radius, "kind": kind, "limit": int(limit)}


def _float(text: str | None, lo: float, hi: float) -> float | None:
    if text is None or not _FLOAT.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) and lo <= value <= hi else None
