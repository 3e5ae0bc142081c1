"""The hello-world FastAPI baseline of bench_matching.py, served the same way as citypark."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response


def app_factory() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")  # the query string (same wrk script as the real endpoint) is ignored
    async def hello() -> Response:
        return Response(b'{"hello":"world"}', media_type="application/json")

    return app
