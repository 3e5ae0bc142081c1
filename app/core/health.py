"""Readiness checks: is the database answering, is the broker accepting connections.

``/readyz`` is anonymous and not rate limited (probes come from everywhere), so it must be
cheap whatever calls it: :class:`Readiness` keeps its last result for ``CITYPARK_READYZ_CACHE_S``
seconds (one check at a time; callers meanwhile share it), asks the database through the app's
own connection pool rather than a new connection, and says only *which* dependency is down
(``unreachable``, ``no answer``, ``refused``) — the exception text goes to the log, once per
change of state, never to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from app.core.mqtt_url import parse_mqtt_url
from app.core.settings import Settings

log = logging.getLogger(__name__)
TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


class BrokerRefused(ConnectionError):
    """The broker answered the CONNECT with a failure (credentials, ACL, server busy)."""


def public_detail(exc: BaseException) -> str:
    """What a caller may know of a failed check: its kind, no text of the exception."""
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, BrokerRefused):
        return "refused the connection"
    return "unreachable"


@dataclass(frozen=True)
class Ready:
    database: Check
    broker: Check

    @property
    def ok(self) -> bool:
        return self.database.ok and self.broker.ok

    @property
    def down(self) -> list[str]:
        return [name for name, c in (("database", self.database), ("broker", self.broker)) if not c.ok]


class Readiness:
    """The cached result of both checks; ``database`` runs a query on the app's pool."""

    def __init__(self, settings: Settings, database: Callable[[], Awaitable[object]]) -> None:
        self.settings = settings
        self.ttl_s = settings.readyz_cache_s
        self._database = database
        self._last: Ready | None = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()
        self.checks = 0  # how many times the dependencies were actually asked

    async def get(self) -> Ready:
        if self._fresh():
            assert self._last is not None
            return self._last
        async with self._lock:  # one check at a time; who waited gets its result
            if not self._fresh():
                await self._refresh()
        assert self._last is not None
        return self._last

    def _fresh(self) -> bool:
        return self._last is not None and time.monotonic() - self._at < self.ttl_s

    async def _refresh(self) -> None:
        self.checks += 1
        last = self._last
        database, broker = await asyncio.gather(
            _checked("database", self._database(), last.database if last else None),
            _checked("broker", asyncio.to_thread(_mqtt_connect, self.settings, TIMEOUT_S),
                     last.broker if last else None))
        self._last, self._at = Ready(database, broker), time.monotonic()


async def _checked(name: str, probe: Awaitable[object], before: Check | None) -> Check:
    try:
        await asyncio.wait_for(probe, TIMEOUT_S + 1)
    except Exception as exc:
        check = Check(False, public_detail(exc))
        if before is None or before.ok:
            log.warning("readiness: %s %s: %s: %s", name, check.detail, type(exc).__name__, exc)
        return check
    if before is not None and not before.ok:
        log.warning("readiness: %s reachable again", name)
    return Check(True, "ok")


def _mqtt_connect(settings: Settings, timeout: float) -> None:
    target = parse_mqtt_url(settings.mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect_timeout = timeout
    if target.tls:
        client.tls_set_context(ssl.create_default_context())
    if target.username:
        client.username_pw_set(target.username, target.password)
    result: list[object] = []
    client.on_connect = lambda c, u, f, rc, p: result.append(rc)
    client.connect(target.host, target.port, keepalive=10)
    try:
        for _ in range(int(timeout * 20)):
            client.loop(timeout=0.05)
            if result:
                break
    finally:
        client.disconnect()
    if not result:
        raise TimeoutError("no CONNACK from broker")
    if getattr(result[0], "is_failure", False):
        raise BrokerRefused(f"broker refused: {result[0]}")
