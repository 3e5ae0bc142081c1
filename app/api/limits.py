"""Request limits as plain ASGI middleware: a per-client rate limit and a body size limit.

Rate limit (``CITYPARK_RATE_LIMIT``, e.g. ``120/minute``; ``0`` = off): a token bucket per
client on every ``/v1/`` request — public reads, pushes, everything a client does. A client is
its API key when it sends one (only a hash of it is kept) and its address otherwise. Buckets
live in the process (``citypark serve --workers W`` gives each worker its own); the least
recently seen clients are forgotten beyond ``MAX_CLIENTS``. Over the limit: ``429`` with
``Retry-After`` (seconds) and the usual error body.

Body size (``CITYPARK_MAX_BODY_BYTES``): a declared ``Content-Length`` over the limit is refused
before the body is read; a chunked body is counted as it arrives. Both give ``413``.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.settings import Settings

MAX_CLIENTS = 100_000
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


class TokenBuckets:
    """Token buckets by client key; ``take`` returns 0 when admitted, else seconds to wait."""

    def __init__(self, rate: Rate, max_clients: int = MAX_CLIENTS) -> None:
        self.rate = rate
        self.max_clients = max_clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        tokens, last = self.buckets.pop(key, (float(self.rate.requests), now))
        tokens = min(float(self.rate.requests), tokens + (now - last) * self.rate.per_second)
        admitted = tokens >= 1.0
        self.buckets[key] = (tokens - 1.0 if admitted else tokens, now)
        if len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return 0.0 if admitted else (1.0 - tokens) / self.rate.per_second


def client_key(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return "key:" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return "addr:" + (client[0] if client else "unknown")


async def send_error(send: Send, status: int, kind: str, detail: str, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps({"error": kind, "detail": detail})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, rate: Rate, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix
        self.buckets = TokenBuckets(rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_key(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        rate = self.buckets.rate
        await send_error(send, 429, "rate_limited",
                         f"more than {rate.requests} requests in {rate.period_s:g} s from this client",
                         {"Retry-After": str(max(1, math.ceil(wait))), "X-RateLimit-Limit": str(rate.requests)})


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if declared is not None and declared > self.max_bytes:
            await send_error(send, 413, "payload_too_large", f"request body larger than {self.max_bytes} bytes")
            return
        if declared is None and not chunked:  # no body at all (RFC 9112 §6.3): nothing to count
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)  # FastAPI re-raises HTTPException as is → 413
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
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    rate = parse_rate(settings.rate_limit)
    if rate is not None:
        app.add_middleware(RateLimitMiddleware, rate=rate)

