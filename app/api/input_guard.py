"""Input no route should ever see, refused at the edge with the usual ``{"error", "detail"}``.

An ASGI middleware in front of the router (and of the hot-path middlewares), for every route:

- **NUL characters** (U+0000) in the path, the query or a JSON body: PostgreSQL refuses the
  byte in ``text`` and ``jsonb``, so it would surface as a 500 deep inside a query. ``422``.
- **Bodies that are not UTF-8** (JSON must be, RFC 8259 §8.1): ``422 invalid_input``, like
  every other malformed body (FastAPI would answer ``400 http_error``).
- **A single-valued query parameter given twice** (``?lat=41.1&lat=42``): ``422`` instead of
  silently taking the last. Which parameters are lists is read from each route's declared
  parameters, so nothing is configured per route; undeclared parameters are left alone.

A body is read whole before the app sees it only when it could hold a NUL escape; its size is
already bounded by ``BodySizeLimitMiddleware`` further out.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.limits import send_error

# a JSON \u0000 escape, not itself escaped (an even number of backslashes before it)
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_TEXTUAL = (b"application/json", b"application/geo+json", b"application/ld+json", b"text/")


class InputGuard:
    def __init__(self, app: ASGIApp, *, owner: FastAPI) -> None:
        self.app, self.owner = app, owner
        # (path pattern, {method: single-valued query names}), read from the OpenAPI description
        self._operations: list[tuple[re.Pattern[str], dict[str, frozenset[str]]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.check_url(scope)
        if problem is not None:
            await send_error(send, 422, "invalid_input", problem)
            return
        if not _has_body(scope) or not _textual(scope):
            await self.app(scope, receive, send)
            return
        try:
            body, passed = await _read(receive)
        except HTTPException as exc:  # the body limit further out, counting a chunked body
            await send_error(send, exc.status_code, "payload_too_large", str(exc.detail))
            return
        problem = check_body(body)
        if problem is not None:
            await send_error(send, 422, "invalid_input", problem)
            return
        await self.app(scope, passed, send)

    def check_url(self, scope: Scope) -> str | None:
        """What is wrong with the path or query, or None."""
        if "\x00" in scope["path"] or b"%00" in scope.get("raw_path", b"") or b"\x00" in scope.get("raw_path", b""):
            return "the path holds a NUL character (U+0000)"
        raw: bytes = scope.get("query_string", b"")
        if not raw:
            return None
        if b"%00" in raw or b"\x00" in raw:
            return "the query holds a NUL character (U+0000)"
        names = [name for name, _ in parse_qsl(raw.decode("latin-1"), keep_blank_values=True)]
        if len(names) == len(set(names)):
            return None
        repeated = sorted({n for n in names if names.count(n) > 1})
        singles = self._single_valued(scope)
        bad = [n for n in repeated if n in singles]
        return f"query parameter {bad[0]!r} given more than once; it takes one value" if bad else None

    def _single_valued(self, scope: Scope) -> frozenset[str]:
        """The declared single-valued query parameters of the operation ``scope`` goes to.

        Read from the app's own OpenAPI description (what every route declares, dependencies
        included), so it holds whatever way the router nests its routes.
        """
        if self._operations is None:
            self._operations = _operations(self.owner.openapi())
        method = scope["method"].lower()
        for pattern, methods in self._operations:
            if pattern.fullmatch(scope["path"]):
                return methods.get(method, frozenset())
        return frozenset()


def _operations(spec: dict[str, Any]) -> list[tuple[re.Pattern[str], dict[str, frozenset[str]]]]:
    out: list[tuple[int, re.Pattern[str], dict[str, frozenset[str]]]] = []
    for path, item in spec.get("paths", {}).items():
        pattern = re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part)
                                     for part in re.split(r"(\{[^}]+\})", path)))
        methods = {}
        for method, operation in item.items():
            if isinstance(operation, dict):
                methods[method] = frozenset(
                    p["name"] for p in operation.get("parameters", [])
                    if p.get("in") == "query" and not _is_array(p.get("schema", {})))
        out.append((path.count("{"), pattern, methods))
    return [(pattern, methods) for _, pattern, methods in sorted(out, key=lambda o: o[0])]  # static paths first


def _is_array(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "array":
        return True
    return any(_is_array(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []) if isinstance(s, dict))


def check_body(body: bytes) -> str | None:
    """What is wrong with a textual body, or None."""
    if b"\x00" in body or (b"\\u0000" in body and _NUL_ESCAPE.search(body)):
        return "the body holds a NUL character (U+0000)"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not valid UTF-8 (byte {exc.start})"
    return None


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value != b"0"
        if name == b"transfer-encoding":
            return True
    return False


def _textual(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.lower().lstrip().startswith(_TEXTUAL)
    return True  # no content type: FastAPI reads it as JSON


async def _read(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a ``receive`` that hands it on once, then the real one's messages."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), _replay(b"".join(chunks), receive, message)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), _replay(b"".join(chunks), receive, None)


def _replay(body: bytes, receive: Receive, pending: Message | None) -> Receive:
    state: dict[str, Any] = {"sent": False}

    async def replay() -> Message:
        if not state["sent"]:
            state["sent"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            return pending
        return await receive()

    return replay
