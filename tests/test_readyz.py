"""Issue 13 item 9: /readyz is cheap whatever calls it — its result is kept for
CITYPARK_READYZ_CACHE_S, the database is asked through the app's pool (no new connection per
call), and a dependency that is down is named with no exception text. Connections are counted
by TCP proxies in front of the real PostgreSQL and Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from app.core.settings import Settings
from tests.conftest import app_client, poll


class Proxy:
    """A TCP proxy on a free port to ``target`` that counts the connections it accepts;
    ``down`` refuses new ones (closes them at once), like a dependency that went away."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.accepted = 0
        self.down = False
        self.server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.down:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def proxied(settings: Settings, **overrides: object) -> AsyncIterator[tuple[httpx.AsyncClient, Proxy, Proxy]]:
    db_url, mqtt_url = urlsplit(settings.asyncpg_dsn), urlsplit(settings.mqtt_url)
    db = Proxy(db_url.hostname or "", db_url.port or 5432)
    broker = Proxy(mqtt_url.hostname or "", mqtt_url.port or 1883)
    db.server = await asyncio.start_server(db._handle, "127.0.0.1", 0)
    broker.server = await asyncio.start_server(broker._handle, "127.0.0.1", 0)
    via = settings.model_copy(update={
        "database_url": f"postgresql://postgres@127.0.0.1:{db.port}{db_url.path}",
        "mqtt_url": f"mqtt://127.0.0.1:{broker.port}", **overrides})
    try:
        async with app_client(via) as client:
            yield client, db, broker
    finally:
        for proxy in (db, broker):
            assert proxy.server is not None
            proxy.server.close()


async def test_a_burst_of_probes_opens_no_connection_per_call(db_settings: Settings) -> None:
    async with proxied(db_settings, readyz_cache_s=10.0) as (client, db, broker):
        first = await client.get("/readyz")
        assert first.status_code == 200, first.text
        seen = db.accepted, broker.accepted
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
        assert {a.status_code for a in answers} == {200}
        assert (db.accepted, broker.accepted) == seen  # 50 calls, not one connection more
        assert client.app.state.readiness.checks == 1  # type: ignore[attr-defined]


async def test_without_the_cache_the_database_is_still_asked_through_the_pool(db_settings: Settings) -> None:
    async with proxied(db_settings, readyz_cache_s=0.0) as (client, db, broker):
        assert (await client.get("/readyz")).status_code == 200
        seen_db, seen_broker = db.accepted, broker.accepted
        for _ in range(5):
            assert (await client.get("/readyz")).status_code == 200
        assert db.accepted == seen_db  # the pool's connection, again and again
        assert broker.accepted == seen_broker + 5  # (the broker check is one CONNECT a check)


async def test_a_dependency_down_is_named_without_exception_text(db_settings: Settings) -> None:
    async with proxied(db_settings, readyz_cache_s=0.2) as (client, db, broker):
        assert (await client.get("/readyz")).status_code == 200
        broker.down = True
        down = await poll(lambda: _status(client, 503), timeout=15)
        body = down.json()
        assert body["error"] == "not_ready"
        assert body["detail"] == "broker down"
        assert body["broker"]["ok"] is False
        assert body["broker"]["detail"] in {"unreachable", "no answer"}  # (closed at once: no CONNACK)
        assert body["database"]["ok"] is True
        for leak in ("Errno", "Error", "refused:", "127.0.0.1", str(broker.port)):
            assert leak not in down.text, leak
        broker.down = False
        up = await poll(lambda: _status(client, 200), timeout=15)
        assert up.json()["ready"] is True


async def _status(client: httpx.AsyncClient, status: int) -> httpx.Response | None:
    response = await client.get("/readyz")
    return response if response.status_code == status else None
