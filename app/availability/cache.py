"""The per-process snapshot of facility availability behind ``GET /v1/facilities``.

``FacilityCache`` holds the latest ``availability.Snapshot``, reloaded when older than
``ttl_s`` (1 s): one aggregate query a second per process instead of one per request; writes
made through this process (operator pushes, inventory) invalidate it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from app.availability.service import Snapshot


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
