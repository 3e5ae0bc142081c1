"""``LISTEN api_keys``: revocations made by any process reach this one's key cache at once.

``keys.service.revoke_key`` sends ``NOTIFY api_keys, '<key id>'`` in the revoking transaction;
PostgreSQL delivers it on commit to every listening connection, and the listener here drops
that key from the process's cache (``forget_key``). While the listener is not connected —
starting, the database away, the connection lost — the cache trusts a key for only
``keys.service.KEY_CACHE_TTL_S`` (1 s), and every (re)connection empties the cache, so a
notification missed in between never keeps a revoked key alive longer than that second.

The connection goes to ``settings.listen_dsn`` (``CITYPARK_DATABASE_DIRECT_URL`` when set):
PgBouncer in transaction mode cannot hold a LISTEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid

import asyncpg

from app.core.settings import Settings
from app.keys import service as keys_service

log = logging.getLogger(__name__)
PING_S = 2.0  # a silently dead connection (no FIN) is noticed within this


class KeyListener:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="keys-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()
        keys_service.set_invalidation_live(False)

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._connect()
                delay = 0.2
                await self._watch()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("key revocation listener down (%s); keys trusted for %.0f s until it is back",
                            type(exc).__name__, keys_service.KEY_CACHE_TTL_S)
            keys_service.set_invalidation_live(False)
            await self._close()
            await asyncio.sleep(delay * (0.5 + random.random()))  # reconnect backoff with jitter
            delay = min(delay * 2, 10.0)

    async def _connect(self) -> None:
        self._lost.clear()
        self._conn = await asyncpg.connect(self.settings.listen_dsn, timeout=5)
        self._conn.add_termination_listener(lambda _conn: self._lost.set())
        await self._conn.add_listener(keys_service.CHANNEL, self._on_revoked)
        keys_service.set_invalidation_live(True, ttl_s=self.settings.key_cache_ttl_s)

    async def _watch(self) -> None:
        """Until the connection is lost; a ping every ``PING_S`` notices a silent partition."""
        while self._conn is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=PING_S)
            if self._lost.is_set():
                raise ConnectionResetError("listener connection closed")
            await self._conn.fetchval("SELECT 1", timeout=PING_S)

    def _on_revoked(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            keys_service.forget_key(uuid.UUID(payload))
        except ValueError:
            log.warning("ignored api_keys notification %r", payload[:80])

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=2.0)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                conn.terminate()
