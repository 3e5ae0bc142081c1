"""``app.api.cors.CORSMiddleware`` answers exactly like Starlette's, only cheaper without Origin."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.api.cors import CORSMiddleware


def _app(middleware: type, *, vary: bool, origins: list[str]) -> Starlette:
    async def hello(_: Request) -> PlainTextResponse:
        return PlainTextResponse("hi", headers={"Vary": "Accept"} if vary else None)

    app = Starlette(routes=[Route("/", hello, methods=["GET", "POST"])])
    app.add_middleware(middleware, allow_origins=origins, allow_methods=["*"], allow_headers=["Authorization"])
    return app


@pytest.mark.parametrize("vary", [False, True])
@pytest.mark.parametrize("origins", [["*"], ["https://map.example"]])
@pytest.mark.parametrize(("method", "headers"), [
    ("GET", {}),
    ("GET", {"Origin": "https://map.example"}),
    ("GET", {"Origin": "https://elsewhere.example"}),
    ("OPTIONS", {"Origin": "https://map.example", "Access-Control-Request-Method": "POST"}),
    ("POST", {"Content-Type": "text/plain"}),
])
async def test_same_answers_as_starlette(vary: bool, origins: list[str], method: str, headers: dict[str, str]) -> None:
    answers = []
    for middleware in (StarletteCORSMiddleware, CORSMiddleware):
        transport = httpx.ASGITransport(_app(middleware, vary=vary, origins=origins))
        async with httpx.AsyncClient(transport=transport, base_url="http://citypark.test") as client:
            r = await client.request(method, "/", headers=headers)
        answers.append((r.status_code, sorted(r.headers.multi_items()), r.text))
    assert answers[0] == answers[1]
    assert ("vary", "Accept, Origin" if vary else "Origin") in answers[1][1] or method == "OPTIONS"
