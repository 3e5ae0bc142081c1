"""Starlette's CORS middleware with a cheap path for requests that carry no ``Origin`` header.

Most requests (the mobile app, programs, load balancers' probes) are not cross-origin browser
calls. For them Starlette parses every header and wraps ``send`` only to add ``Vary: Origin``;
here that one header is added directly. Requests with an ``Origin`` go through Starlette's code.
A refused preflight is ``400`` with the contract's error body (Starlette answers it in plain text).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send


class CORSMiddleware(StarletteCORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        kept = {k: v for k, v in response.headers.items() if k not in {"content-length", "content-type"}}
        detail = bytes(response.body).decode("utf-8", "replace")
        return JSONResponse({"error": "cors_refused", "detail": f"{detail} (CITYPARK_CORS_ORIGINS lists the allowed)"},
                            status_code=response.status_code, headers=kept)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                vary = [value for name, value in headers if name.lower() == b"vary"]
                headers = [(name, value) for name, value in headers if name.lower() != b"vary"] if vary else headers
                headers.append((b"vary", b", ".join([*vary, b"Origin"])))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_vary)
