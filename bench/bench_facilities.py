"""Benchmark: ``GET /v1/facilities`` near a point vs. a hello-world FastAPI, both under wrk.

    .venv/bin/python bench/bench_facilities.py [--duration 10] [--connections 64]

Both apps are served the same way (uvicorn, one worker, no access log, ``CITYPARK_RATE_LIMIT=0``)
and driven by ``wrk`` with the same threads and connections; the figure is the ratio of their
requests per second (target ≥ 0.5), with p50 and p99 latencies. The facilities app runs on a
throwaway database (``citypark_bench_facilities``) with the demo district seeded and every
sensor freshly reporting, so the numbers are computed, not empty.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "citypark_bench_facilities"
POINT = "lat=41.112&lon=122.997&radius_m=1000"

hello_app = FastAPI()


@hello_app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec and the 50 %/99 % latencies of ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    latency = {q: _ms(v, unit) for q, v, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx[1]) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return WrkResult(rps, latency["50"], latency["99"], errors)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # waiting for the server to come up, bounded by the deadline
    raise TimeoutError(f"{url} did not answer 200")


def serve(target: str, port: int, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--no-access-log", "--log-level", "warning", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def wrk(url: str, *, duration: int, connections: int, threads: int) -> WrkResult:
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True)
    return parse_wrk(out.stdout)


def measure(target: str, extra: tuple[str, ...], path: str, env: dict[str, str], **load: int) -> WrkResult:
    """Serve ``target``, warm it up, then measure ``path`` under wrk."""
    port = free_port()
    proc = serve(target, port, env, *extra)
    try:
        url = f"http://127.0.0.1:{port}{path}"
        wait_http(url)
        wrk(url, duration=2, connections=load["connections"], threads=load["threads"])  # warm-up
        return wrk(url, **load)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def prepare_database(base_url: str) -> str:
    """A fresh benchmark database: migrated, demo district, every sensor reporting now."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.core import migrate as database
    from app.core.db import create_engine
    from app.core.settings import Settings
    from app.inventory import seed as seed_service

    settings = Settings(database_url=f"{base_url.rstrip('/')}/{BENCH_DB}")
    await database.drop_database(settings)
    await database.migrate(settings)
    engine = create_engine(settings, pool_size=1)
    async with AsyncSession(engine) as session, session.begin():
        await seed_service.seed_demo(session, name="tiedong")
        await session.execute(text(
            "UPDATE space_state SET occupied = (random() < 0.6), observed_at = now(), since = now(), "
            "last_seen = now() + interval '1 day'"))  # stays fresh however long the run takes
    await engine.dispose()
    return settings.database_url


def main(
    duration: int = typer.Option(10, help="seconds of measured load per app"),
    connections: int = typer.Option(64, help="concurrent connections"),
    threads: int = typer.Option(2, help="wrk threads"),
    database: str = typer.Option("postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server (no db name)"),
) -> None:
    if shutil.which("wrk") is None:
        raise typer.Exit("wrk is not installed (apt-get install wrk)")
    db_url = asyncio.run(prepare_database(database))
    env = {**os.environ, "CITYPARK_DATABASE_URL": db_url, "CITYPARK_RATE_LIMIT": "0",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"}
    load = {"duration": duration, "connections": connections, "threads": threads}
    hello = measure("bench_facilities:hello_app", (), "/hello", env, **load)
    facilities = measure("app.api.main:app_factory", ("--factory",), f"/v1/facilities?{POINT}", env, **load)
    print(f"wrk -t{threads} -c{connections} -d{duration}s, uvicorn 1 worker each, CITYPARK_RATE_LIMIT=0")
    for name, r in (("hello-world FastAPI", hello), ("GET /v1/facilities near a point", facilities)):
        print(f"  {name:34s} {r.rps:9.0f} req/s   p50 {r.p50_ms:7.2f} ms   p99 {r.p99_ms:7.2f} ms"
              f"   errors {r.errors}")
    ratio = facilities.rps / hello.rps
    print(f"ratio facilities / hello-world: {ratio:.2f} (target >= 0.5) -> {'PASS' if ratio >= 0.5 else 'FAIL'}")


if __name__ == "__main__":
    typer.run(main)
