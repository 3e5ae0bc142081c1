"""Request limits as plain ASGI middleware: a per-client rate limit and a body size limit.

Rate limit (``CITYPARK_RATE_LIMIT``, e.g. ``120/minute``; ``0`` = off): at most N requests in
any window of the period (the ``limits`` library's moving window) per client, on every request
under ``/v1/``, ``/ngsi-ld/`` and ``/datex2/`` (``LIMITED_PREFIXES``) — public reads, pushes,
subscriptions, publications, everything a client does; operations endpoints (``/healthz``,
``/readyz``, ``/metrics``) and the web map's static files are not limited. Over it: ``429`` with ``Retry-After``
(seconds) and the usual error body.

Who is a client (so that a new random bearer token per request buys nothing): a caller with a
valid API key is its key (its principal's id); everyone else — no key, an unknown, malformed or
revoked one — is its address. A token this process has not authenticated recently is looked up
once (then cached, ``app.keys.service``); those look-ups are themselves limited per address
(``AUTH_FACTOR`` × the rate), so a flood of made-up keys costs the database nothing beyond that.

Where the counts live (``CITYPARK_RATE_LIMIT_STORAGE``): Redis (``redis://…``, the default
``redis://127.0.0.1:6379/0``), shared by every API process on every machine, so N processes
allow the limit once, not N times. While Redis is unreachable each process keeps counting in
its own memory — a limit still holds, per process — and says so loudly: a warning in the log,
``citypark_rate_limit_shared 0`` and ``citypark_rate_limit_local_decisions_total`` in
``/metrics``; it goes back to Redis once a probe (every second) answers. ``memory://`` keeps
counts per process on purpose (one process, tests).

Body size (``CITYPARK_MAX_BODY_BYTES``; ``PUT …/inventory`` has its own,
``CITYPARK_INVENTORY_MAX_BODY_BYTES``): a declared ``Content-Length`` over the limit is refused
before the body is read; a chunked body is counted as it arrives. Both give ``413``; an inventory
that is too big is told to use ``citypark import``, which streams a file of any size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.settings import Settings
from app.keys import service as keys_service

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$")
_PERIOD_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
             "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


@dataclass(frozen=True)
class Rate:
    """``requests`` per ``period_s`` seconds; the bucket holds at most ``requests`` tokens."""

    requests: int
    period_s: float

    @property
    def per_second(self) -> float:
        return self.requests / self.period_s


def parse_rate(text: str) -> Rate | None:
    """``"120/minute"``, ``"10/s"``, ``"1000/hour"``, ``"50/10s"`` → Rate; ``"0"`` → None (off)."""
    if text.strip() in {"0", "", "off"}:
        return None
    match = _RATE.match(text)
    if not match or int(match[1]) <= 0:
        raise ValueError(f"CITYPARK_RATE_LIMIT {text!r}: use N/second, N/minute, N/hour or 0 (off)")
    return Rate(int(match[1]), int(match[2] or 1) * _PERIOD_S[match[3]])


LIMITED_PREFIXES = ("/v1/", "/ngsi-ld/", "/datex2/")
AUTH_FACTOR = 10  # per address, not-yet-cached keys looked up per period: this × the rate
PROBE_S = 1.0
REDIS_TIMEOUT_S = 0.25
log = logging.getLogger(__name__)
SHARED = Gauge("citypark_rate_limit_shared", "1 while rate limits are counted in the shared store")
LOCAL_DECISIONS = Counter("citypark_rate_limit_local_decisions_total",
                          "rate-limit decisions made in process memory because the shared store was down")
LIMITED = Counter("citypark_rate_limited_total", "requests refused with 429", ["by"])


class SharedLimiter:
    """A moving-window limit per client key in the shared store, in memory while it is down."""

    def __init__(self, rate: Rate, storage_uri: str, prefix: str) -> None:
        self.rate = rate
        self.item = RateLimitItemPerSecond(rate.requests, max(1, round(rate.period_s)))
        self.auth_item = RateLimitItemPerSecond(rate.requests * AUTH_FACTOR, max(1, round(rate.period_s)))
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.store: Storage | None = _storage(storage_uri, prefix)
        self.remote = MovingWindowRateLimiter(self.store) if self.store is not None else None
        self.shared = self.remote is not None
        self._probe: asyncio.Task[None] | None = None
        SHARED.set(1 if self.shared else 0)

    async def hit(self, key: str, *, auth: bool = False) -> float:
        """Count one request of ``key``: 0 when admitted, else the seconds until it would be."""
        item = self.auth_item if auth else self.item
        if self.shared and self.remote is not None:
            try:
                return await _hit(self.remote, item, key)
            except StorageError as exc:
                self._went_down(exc)
        LOCAL_DECISIONS.inc()
        return await _hit(self.local, item, key)

    def _went_down(self, exc: StorageError) -> None:
        if self.shared:
            log.warning("rate-limit store unreachable (%s); counting in this process only until it "
                        "answers again (N processes now allow up to N × %s requests / %g s)",
                        type(exc.storage_error).__name__, self.rate.requests, self.rate.period_s)
        self.shared = False
        SHARED.set(0)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._wait_for_store())

    async def _wait_for_store(self) -> None:
        while self.store is not None:
            await asyncio.sleep(PROBE_S)  # a probe interval, not a wait for a result
            with contextlib.suppress(Exception):
                if await self.store.check():
                    log.warning("rate-limit store reachable again; limits are shared across processes")
                    self.shared = True
                    SHARED.set(1)
                    return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


async def _hit(limiter: MovingWindowRateLimiter, item: RateLimitItemPerSecond, key: str) -> float:
    if await limiter.hit(item, key):
        return 0.0
    stats = await limiter.get_window_stats(item, key)
    return max(stats.reset_time - time.time(), 0.001)


def _storage(uri: str, prefix: str) -> Storage | None:
    """The shared store for ``uri`` (``redis://``, ``rediss://``), None for ``memory://``."""
    scheme = uri.split("://", 1)[0].lower()
    if scheme == "memory":
        return None
    if scheme not in {"redis", "rediss"}:
        raise ValueError(f"CITYPARK_RATE_LIMIT_STORAGE {uri!r}: use redis://host:port/db or memory://")
    return RedisStorage(f"async+{uri}", implementation="redispy", key_prefix=prefix, wrap_exceptions=True,
                        socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S)


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def address_key(scope: Scope) -> str:
    client = scope.get("client")
    return "addr:" + (client[0] if client else "unknown")


async def send_error(send: Send, status: int, kind: str, detail: str, headers: dict[str, str] | None = None,
                     extra: dict[str, Any] | None = None) -> None:
    body = orjson.dumps({"error": kind, "detail": detail, **(extra or {})})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def problem_fields(path: str, status: int, title: str, etsi_type: str | None = None) -> dict[str, Any] | None:
    """On NGSI-LD paths an error is also an RFC 7807 ProblemDetails (``type``, ``title``, ``status``)
    beside the contract's ``error`` and ``detail``; ``about:blank`` where ETSI defines no type."""
    if not path.startswith("/ngsi-ld/"):
        return None
    kind = f"https://uri.etsi.org/ngsi-ld/errors/{etsi_type}" if etsi_type else "about:blank"
    return {"type": kind, "title": title, "status": status}


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limiter: SharedLimiter, owner: FastAPI,
                 prefixes: tuple[str, ...] = LIMITED_PREFIXES) -> None:
        self.app = app
        self.prefixes = prefixes
        self.limiter = limiter
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        key = await self.client_key(scope)
        wait = key[1] if isinstance(key, tuple) else await self.limiter.hit(key)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        LIMITED.labels(by=(key[0] if isinstance(key, tuple) else key).split(":", 1)[0]).inc()
        rate = self.limiter.rate
        await send_error(send, 429, "rate_limited",
                         f"more than {rate.requests} requests in {rate.period_s:g} s from this client",
                         {"Retry-After": str(max(1, math.ceil(wait))), "X-RateLimit-Limit": str(rate.requests)},
                         problem_fields(scope["path"], 429, "TooManyRequests"))

    async def client_key(self, scope: Scope) -> str | tuple[str, float]:
        """The principal's key, else the address; ``(key, wait)`` when key look-ups are over their limit."""
        token, address = bearer_token(scope), address_key(scope)
        if token is None or not keys_service.plausible_key(token):
            return address
        principal = keys_service.cached_principal(token)
        if principal is None:
            wait = await self.limiter.hit("auth:" + address, auth=True)
            if wait > 0:
                return address, wait
            principal = await self._authenticate(token)
        return address if principal is None else f"key:{principal.key_id}"

    async def _authenticate(self, token: str) -> keys_service.Principal | None:
        sessionmaker: Any = getattr(self.owner.state, "sessionmaker", None)
        if sessionmaker is None:
            return None
        try:
            async with sessionmaker() as session:
                return await keys_service.authenticate_cached(session, key=token)
        except Exception:  # database away: the caller counts as its address; the route answers
            log.debug("key look-up for the rate limit failed", exc_info=True)
            return None


class BodyTooLarge(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


INVENTORY_PATH = re.compile(r"^/v1/operators/[^/]+/inventory/?$")
INVENTORY_HINT = ("; load a big inventory with the command line, which streams a file of any size: "
                  "citypark import FILE --operator OP")


@dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    detail: str


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, inventory_max_bytes: int | None = None) -> None:
        self.app = app
        self.default = BodyLimit(max_bytes, f"request body larger than {max_bytes} bytes")
        inventory = max_bytes if inventory_max_bytes is None else inventory_max_bytes
        self.inventory = BodyLimit(inventory, f"request body larger than {inventory} bytes "
                                              f"(CITYPARK_INVENTORY_MAX_BODY_BYTES){INVENTORY_HINT}")

    def _limit(self, scope: Scope) -> BodyLimit:
        return self.inventory if INVENTORY_PATH.match(scope.get("path", "")) else self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared, chunked = _body_headers(scope)
        if declared is not None and declared > limit.max_bytes:
            await send_error(send, 413, "payload_too_large", limit.detail)
            return
        if declared is None and not chunked:  # no body at all (RFC 9112 §6.3): nothing to count
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._counting(receive, limit), send)

    def _counting(self, receive: Receive, limit: BodyLimit) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit.max_bytes:
                raise BodyTooLarge(limit.detail)  # FastAPI re-raises HTTPException as is → 413
            return message

        return counted


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None when absent or unreadable) and whether a
    Transfer-Encoding is given (a body of unknown length follows)."""
    length, chunked = None, False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            length = int(value) if value.isdigit() else -1
        elif name == b"transfer-encoding":
            chunked = True
    return (None if length == -1 else length), chunked or length == -1


def install(app: FastAPI, settings: Settings) -> None:
    """Add both middlewares (call before CORS is added, so CORS wraps their responses)."""
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       inventory_max_bytes=settings.inventory_max_body_bytes)
    rate = parse_rate(settings.rate_limit)
    if rate is not None:
        prefix = settings.rate_limit_prefix or f"citypark:{settings.database_name}"
        app.state.rate_limiter = SharedLimiter(rate, settings.rate_limit_storage, prefix)
        app.add_middleware(RateLimitMiddleware, limiter=app.state.rate_limiter, owner=app)


async def close(app: FastAPI) -> None:
    """Stop the store probe (lifespan shutdown)."""
    limiter: SharedLimiter | None = getattr(app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.close()
