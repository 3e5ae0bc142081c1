"""The last word on an unexpected error: ``500 {"error": "internal_error", "detail": …}``.

An ASGI middleware just inside CORS (so a browser can read the answer), around the limits,
the input guard and every route. An exception that no handler of the error table answered —
a bug, a lost database connection mid-query — is logged here once with its traceback, counted
in ``citypark_http_unhandled_errors_total{method}``, and answered with the contract's error
body, which names no exception and quotes no text of it (that stays in the server's log, found
by the ``ref`` both carry). When the response had already begun (a stream), nothing can be
said to the client any more: the error is logged and counted, and re-raised so that the server
cuts the connection (the client sees a broken answer, not a complete wrong one).
"""

from __future__ import annotations

import logging
import secrets

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.limits import problem_fields, send_error

log = logging.getLogger(__name__)
UNHANDLED = Counter("citypark_http_unhandled_errors_total", "requests ended by an unexpected error (500)",
                    ["method"])
DETAIL = "an unexpected error occurred; it is logged (ref {ref}), please try again or report it"


class CatchAll:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            ref = secrets.token_hex(4)
            method = scope.get("method", "?")
            UNHANDLED.labels(method=method if method in _METHODS else "other").inc()
            log.exception("unhandled error (ref %s) on %s %s", ref, method, scope.get("path"))
            if started:  # the client has a partial answer: the server cuts the connection
                raise
            await send_error(send, 500, "internal_error", DETAIL.format(ref=ref),
                             extra=problem_fields(scope.get("path", ""), 500, "InternalError", "InternalError"))


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
