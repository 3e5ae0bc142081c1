"""In-process cost of the hot routes (``app.api.hot``) against a bare Starlette route.

    .venv/bin/python bench/bench_hot_routes.py [--requests 5000]

Builds the app on a scratch copy of the demo district (every space freshly free, the
free-space index loaded), then calls the ASGI app directly — no sockets, no uvicorn — for
``GET /v1/spaces/free`` and ``GET /v1/facilities`` near 站前广场, through the full middleware
stack (limits, CORS, error table, router). The baseline, measured in the same run, is a plain
Starlette app whose one route returns a body of the same size: what any ASGI answer costs.
Prints CPU µs per request of this process (median of 5 rounds; CPU time, so other load on the
machine does not count) and the ratio to the baseline.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import typer
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.api.main import create_app  # noqa: E402
from app.core import migrate  # noqa: E402
from app.core.db import in_session, raw_connection  # noqa: E402
from app.core.settings import Settings  # noqa: E402
from app.inventory import seed  # noqa: E402

POINT = "lat=41.1068&lon=122.9952"
QUERIES = {"GET /v1/spaces/free": ("/v1/spaces/free", f"{POINT}&limit=10"),
           "GET /v1/facilities": ("/v1/facilities", f"{POINT}&radius_m=1000")}


async def call(app: Any, path: str, query: str) -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000), "server": ("bench", 80)}
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        else:
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], out["body"]


async def per_request_us(app: Any, path: str, query: str, n: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(n // 5):
            await call(app, path, query)
        rounds.append((time.process_time() - started) / (n // 5) * 1e6)
    return statistics.median(rounds)


async def prepare(settings: Settings) -> None:
    await migrate.drop_database(settings)
    await migrate.migrate(settings)
    await in_session(settings, lambda s: seed.seed_demo(s, name="tiedong"))
    async with raw_connection(settings) as conn:
        await conn.execute("UPDATE space_state SET occupied = false, observed_at = now(), since = now(), "
                           "last_seen = now() + interval '1 day'")
        await conn.execute("UPDATE facility_counts SET free = 10, observed_at = now(), "
                           "last_seen = now() + interval '1 day'")


async def run(n: int, database: str) -> None:
    settings = Settings(database_url=f"{database.rstrip('/')}/citypark_bench_hot", rate_limit="0")
    await prepare(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        while not app.state.matching.ready:
            await asyncio.sleep(0.05)
        results = {}
        for name, (path, query) in QUERIES.items():
            status, body = await call(app, path, query)
            assert status == 200, (name, status, body[:200])
            await per_request_us(app, path, query, n // 5)  # warm up
            bare = Starlette(routes=[Route(path, lambda _r, b=body: Response(b, media_type="application/json"))])
            results[name] = (await per_request_us(app, path, query, n), await per_request_us(bare, path, query, n),
                             len(body))
    await migrate.drop_database(settings)
    print(f"bench_hot_routes — in process, {n} requests per figure (median of 5 rounds), demo district")
    for name, (hot_us, bare_us, size) in results.items():
        print(f"{name:22s} {hot_us:7.1f} µs/request vs bare Starlette route {bare_us:6.1f} µs "
              f"(same {size}-byte body) → {hot_us / bare_us:.2f}×")


def main(requests: int = typer.Option(5000, help="requests per figure"),
         database: str = typer.Option("postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server")) -> None:
    asyncio.run(run(requests, database))


if __name__ == "__main__":
    typer.run(main)
