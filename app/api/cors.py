"""Starlette's CORS middleware with a cheap path for requests that carry no ``Origin`` header.

Most requests (the mobile app, programs, load balancers' probes) are not cross-origin browser
calls. For them Starlette parses every header and wraps ``send`` only to add ``Vary: Origin``;
here that one header is added directly. Requests with an ``Origin`` go through Starlette's code.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.types import Message, Receive, Scope, Send


class CORSMiddleware(StarletteCORSMiddleware):
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
