"""Matching benchmarks of issue 4, ratios measured in one run on 100,000 spaces.

    .venv/bin/python bench/bench_matching.py [--spaces 100000] [--duration 10] [--workers 2]

HTTP is measured with ``wrk`` (Lua scripts randomise the point), servers run with
``CITYPARK_RATE_LIMIT=0``. Prints, each against its baseline from the same run:

1. ``GET /v1/spaces/free`` p50/p99 on one connection vs a bare asyncpg KNN p50 (target ≤ 2×);
2. its requests/s at 16 connections vs a hello-world FastAPI served the same way (≥ 0.6);
3. 64 concurrent ``POST /v1/assignments``: spaces with two active holds (0) and throughput vs
   the bare KNN rate at the same concurrency (≥ 0.3×), for batch windows 0 and 200 ms;
4. the batch solve time for 1,000 drivers × 20 candidates, and × 128 (the depth the service
   fetches for a batch that large, ``matching.candidate_depth``).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import numpy as np
import typer
from sqlalchemy.ext.asyncio import AsyncSession

import matching
from app.core import migrate as database
from app.core.db import create_engine, raw_connection
from app.core.settings import Settings
from app.inventory import seed as seed_service
from app.keys import service as keys_service

HERE = Path(__file__).resolve().parent
BBOX = seed_service.DISTRICT_BBOX  # minlon, minlat, maxlon, maxlat
BARE_KNN = ("SELECT id, ST_X(geom), ST_Y(geom) FROM spaces "
            "ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326) LIMIT 10")
DOUBLE_HOLDS = """SELECT count(*) FROM assignments a JOIN assignments b ON a.space_id = b.space_id
    AND a.id < b.id AND a.hold && b.hold
    WHERE a.status IN ('held', 'reassigned') AND b.status IN ('held', 'reassigned')"""


def _point(rng: random.Random) -> tuple[float, float]:
    return rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])


async def prepare(settings: Settings, spaces: int) -> dict[str, str]:
    """Migrated database with ``spaces`` synthetic spaces, fresh sensor times, no holds."""
    await database.migrate(settings)
    async with raw_connection(settings) as conn:
        have = await conn.fetchval("SELECT count(*) FROM spaces")
        if have < spaces:
            await seed_service.seed_synthetic(conn, n=spaces - have, seed=1)
        await conn.execute("UPDATE space_state SET last_seen = now(), observed_at = now()")
        await conn.execute("DELETE FROM assignments")
        await conn.execute("VACUUM ANALYZE")
    engine = create_engine(settings, pool_size=1)
    async with AsyncSession(engine) as session, session.begin():
        key, _ = await keys_service.create_key(  # a fleet key: the benchmark holds many spaces at once
            session, role="driver", max_holds=keys_service.MAX_HOLDS_LIMIT)
    await engine.dispose()
    return {"key": key}


async def bare_knn_p50(dsn: str, n: int = 3000) -> float:
    """p50 (ms) of the bare KNN, sequential on one connection."""
    rng, conn = random.Random(1), await asyncpg.connect(dsn)
    try:
        stmt, times = await conn.prepare(BARE_KNN), []
        for _ in range(n):
            lon, lat = _point(rng)
            started = time.perf_counter()
            await stmt.fetch(lon, lat)
            times.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return statistics.median(times[n // 10:]) * 1000


async def bare_knn_rate(dsn: str, seconds: float, concurrency: int = 64, pool_size: int = 16) -> float:
    """Bare KNN queries per second with ``concurrency`` callers over a pool."""
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    done, deadline = 0, time.perf_counter() + seconds

    async def caller(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            await pool.fetch(BARE_KNN, *_point(rng))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    rate = done / (time.perf_counter() - started)
    await pool.close()
    return rate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(target: str, env: dict[str, str], workers: int,
          cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start uvicorn the way ``citypark serve`` does (factory, no access log); wait for the port."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.1)  # waiting for a server to bind, bounded by the deadline
    proc.kill()
    raise TimeoutError(f"{target} did not start")


def wrk(url: str, *, connections: int, seconds: float, script: str | None = None,
        args: tuple[str, ...] = ()) -> dict[str, float]:
    """Run wrk; returns p50/p99 (ms), requests/s and non-2xx count."""
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:.0f}s", "--latency"]
    cmd += ["-s", str(HERE / script)] if script else []
    out = subprocess.run([*cmd, url, "--", *args], capture_output=True, text=True, check=True).stdout
    return {"p50": _latency(out, "50%"), "p99": _latency(out, "99%"),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
            "non2xx": float(m[1]) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0.0,
            "requests": float(re.search(r"(\d+) requests in", out)[1])}  # type: ignore[index]


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{re.escape(pct)}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def batch_solve_ms(drivers: int = 1000, k: int = 20, repeats: int = 5) -> dict[str, float]:
    """Median time (ms) of the exact batch solve and of greedy, ``drivers`` × ``k`` candidates."""
    rng = np.random.default_rng(0)
    pool = [matching.Space(f"s{j}", *rng.uniform(0, 3000, 2)) for j in range(drivers * 4)]
    xy = np.array([[s.x, s.y] for s in pool])
    ds = [matching.Driver(f"d{i}", *rng.uniform(0, 3000, 2), *rng.uniform(0, 3000, 2)) for i in range(drivers)]
    cands = [[pool[j] for j in np.argsort(np.hypot(*(xy - [d.dest_x, d.dest_y]).T))[:k]] for d in ds]
    out = {}
    for name, solve in (("optimal", matching.assign_optimal), ("greedy", matching.assign_greedy)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            solve(ds, cands)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times) * 1000
    return out


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CITYPARK_DATABASE_URL": settings.database_url, "CITYPARK_RATE_LIMIT": "0", **extra})
    return env


def _bbox_args() -> tuple[str, ...]:
    return tuple(str(v) for v in BBOX)


def read_path(settings: Settings, workers: int, seconds: float, reps: int = 3) -> dict[str, dict[str, float]]:
    """GET /v1/spaces/free, hello world and /healthz, same wrk script; both servers up at once and
    the measurements interleaved ``reps`` times (medians), so a load change on the machine hits both."""
    free, free_url = serve("app.api.main:app_factory", _env(settings), workers)
    hello, hello_url = serve("bench_matching_hello:app_factory", _env(settings), workers, HERE)
    runs: dict[str, list[dict[str, float]]] = {}
    targets = {"free": (free_url, "/v1/spaces/free"), "hello": (hello_url, "/hello"),
               "healthz": (free_url, "/healthz")}
    try:
        for url, path in targets.values():  # warm-up (and the index loaded)
            wrk(url, connections=16, seconds=3, script="bench_matching_free.lua", args=(*_bbox_args(), path))
        for _ in range(reps):
            for name, (url, path) in targets.items():
                for conns in (1, 16):
                    runs.setdefault(f"{name}_{conns}", []).append(wrk(
                        url, connections=conns, seconds=seconds, script="bench_matching_free.lua",
                        args=(*_bbox_args(), path)))
    finally:
        for proc in (free, hello):
            proc.terminate()
            proc.wait(timeout=30)
    return {key: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for key, rs in runs.items()}


async def write_path(settings: Settings, key: str, workers: int, seconds: float, window_ms: int) -> dict[str, float]:
    """64 concurrent POST /v1/assignments; then count spaces with two active holds."""
    async with raw_connection(settings) as conn:
        await conn.execute("DELETE FROM assignments")
    proc, url = serve("app.api.main:app_factory", _env(settings, CITYPARK_BATCH_WINDOW_MS=str(window_ms)), workers)
    try:
        wrk(url + "/healthz", connections=1, seconds=3)  # warm-up: index loaded before measuring
        result = wrk(url, connections=64, seconds=seconds, script="bench_matching_assign.lua",
                     args=(*_bbox_args(), key))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    async with raw_connection(settings) as conn:
        result["double_holds"] = float(await conn.fetchval(DOUBLE_HOLDS))
        result["holds"] = float(await conn.fetchval(
            "SELECT count(*) FROM assignments WHERE status IN ('held', 'reassigned')"))
    return result


def main(spaces: int = 100_000, duration: float = 10.0, workers: int = 2,
         database_url: str = "postgresql://postgres@127.0.0.1:5432/citypark_bench_matching") -> None:
    """Run every benchmark and print each figure next to its baseline and target."""
    settings = Settings(database_url=database_url, rate_limit="0")
    prepared = asyncio.run(prepare(settings, spaces))
    knn_p50 = asyncio.run(bare_knn_p50(settings.asyncpg_dsn))
    knn_rate = asyncio.run(bare_knn_rate(settings.asyncpg_dsn, seconds=5))
    http = read_path(settings, workers, duration)
    writes = {w: asyncio.run(write_path(settings, prepared["key"], workers, duration, w)) for w in (0, 200)}
    solve = batch_solve_ms()
    deep = batch_solve_ms(k=matching.candidate_depth(1000), repeats=3)
    _report(spaces, workers, knn_p50, knn_rate, http, writes, solve, deep)


def _report(spaces: int, workers: int, knn_p50: float, knn_rate: float, http: dict[str, dict[str, float]],
            writes: dict[int, dict[str, float]], solve: dict[str, float], deep: dict[str, float]) -> None:
    free1, free16, hello1, hello16 = http["free_1"], http["free_16"], http["hello_1"], http["hello_16"]
    print(f"bench_matching — {spaces} spaces, uvicorn workers {workers}, wrk, CITYPARK_RATE_LIMIT=0, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"bare asyncpg KNN (10 nearest): p50 {knn_p50:.3f} ms on one connection; "
          f"{knn_rate:.0f} queries/s with 64 callers over 16 connections")
    print("read path: medians of 3 interleaved wrk runs per figure")
    print(f"GET /v1/spaces/free, 1 connection: p50 {free1['p50']:.3f} ms, p99 {free1['p99']:.3f} ms "
          f"→ p50 {free1['p50'] / knn_p50:.2f}× bare KNN (target ≤ 2×)")
    print(f"  hello world, 1 connection: p50 {hello1['p50']:.3f} ms, p99 {hello1['p99']:.3f} ms")
    print(f"GET /v1/spaces/free, 16 connections: {free16['rps']:.0f} req/s vs hello world {hello16['rps']:.0f} "
          f"req/s → {free16['rps'] / hello16['rps']:.2f} (target ≥ 0.6)")
    print(f"  for scale: GET /healthz through citypark's middleware stack, 16 connections: "
          f"{http['healthz_16']['rps']:.0f} req/s ({http['healthz_16']['rps'] / hello16['rps']:.2f} of hello world)")
    for window, w in writes.items():
        ok = (w["requests"] - w["non2xx"]) / w["requests"] if w["requests"] else 0.0
        print(f"POST /v1/assignments, 64 connections, batch window {window} ms: {w['rps']:.0f} req/s "
              f"({ok:.0%} 201, rest 409 no_free_space), {w['holds']:.0f} active holds, "
              f"{w['double_holds']:.0f} spaces with two active holds (target 0); "
              f"{w['rps'] / knn_rate:.2f}× bare KNN rate (target ≥ 0.3×); p50 {w['p50']:.1f} ms")
    print(f"batch solve, 1000 drivers × 20 candidates: optimal {solve['optimal']:.0f} ms, "
          f"greedy {solve['greedy']:.0f} ms (median of 5)")
    print(f"batch solve, 1000 drivers × {matching.candidate_depth(1000)} candidates (the service's depth for "
          f"such a batch): optimal {deep['optimal']:.0f} ms, greedy {deep['greedy']:.0f} ms (median of 3)")


if __name__ == "__main__":
    typer.run(main)
