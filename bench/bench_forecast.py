"""Benchmark: forecast training time, and the forecast endpoint against ``GET /v1/facilities/{id}``.

    .venv/bin/python bench/bench_forecast.py [--facilities 1000] [--days 90] [--requests 400]

On a throwaway database (``citypark_bench_forecast``): ``--facilities`` gate-counted lots with
``--days`` of generated 15-minute counts (``app.forecast.synthetic``, written with COPY, not
timed), then ``citypark forecast train``'s work timed in two parts (reading the history grid
from PostgreSQL; fitting the model and its held-out evaluation). Then one uvicorn process
(rate limit off) serves both endpoints; after its forecast board is ready, ``--requests``
sequential requests of each, interleaved over random facilities on one keep-alive connection,
give the p50 of each and their ratio (target ≤ 1.5).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import typer

from app.core import migrate as database
from app.core.db import in_session
from app.core.settings import Settings
from app.forecast import series, store, synthetic, training
from app.inventory import seed
from app.inventory import service as inventory

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "citypark_bench_forecast"
OPERATOR = "bench-op"


def settings_for(base: str) -> Settings:
    return Settings(database_url=f"{base.rstrip('/')}/{BENCH_DB}", rate_limit="0")


async def prepare(settings: Settings, n: int, days: int, end: datetime) -> None:
    await database.drop_database(settings)
    await database.migrate(settings)
    hist = synthetic.generate(n, days, start=end - timedelta(days=days), seed=1, prefix="bf")
    doc = synthetic.inventory(hist, spacing_deg=0.001)
    await in_session(settings, lambda s: inventory.import_inventory(s, operator_id=OPERATOR, doc=doc))
    # the demo district too: the API's free-space index wants spaces to exist
    await in_session(settings, lambda s: seed.seed_demo(s, name="tiedong"))
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute("SELECT citypark_ensure_month_partitions('count_events', $1::date, $2::date)",
                           hist.start.date(), end.date())
        stamps = [datetime.fromtimestamp(e, UTC) for e in hist.epoch]
        for f, fid in enumerate(hist.ids):
            ok = ~np.isnan(hist.free[f])
            rows = [(fid, stamps[k], int(hist.free[f, k]), int(hist.capacity[f])) for k in np.flatnonzero(ok)]
            await conn.copy_records_to_table("count_events", records=rows,
                                             columns=["facility_id", "observed_at", "free", "total"])
        await conn.execute("ANALYZE count_events")
    finally:
        await conn.close()


async def timed_training(settings: Settings, end: datetime, days: int) -> tuple[float, float, dict[str, object]]:
    """What ``forecast train`` does, timed in its two parts."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        t0 = time.perf_counter()
        inv = await series.inventory(conn)
        grid = await series.load(conn, inv, end=end, n=days * 96)
        read_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        art, metrics = training.fit(grid, country=settings.forecast_holidays, max_samples=settings.forecast_max_samples)
        fit_s = time.perf_counter() - t1
        assert art is not None
        metrics["model_id"] = await store.save(conn, art, metrics)
    finally:
        await conn.close()
    return read_s, fit_s, metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latencies(base: str, ids: list[str], requests: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(0)
    plain, forecast = [], []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(requests * 2):
            fid = ids[int(rng.integers(0, len(ids)))]
            path = f"/v1/facilities/{fid}" + ("/forecast" if i % 2 else "")
            t0 = time.perf_counter()
            r = client.get(path)
            elapsed = (time.perf_counter() - t0) * 1000
            assert r.status_code == 200, r.text
            (forecast if i % 2 else plain).append(elapsed)
    return plain, forecast


def serve_and_measure(settings: Settings, ids: list[str], requests: int) -> tuple[float, float, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPARK_")}
    env |= {"CITYPARK_DATABASE_URL": settings.database_url, "CITYPARK_RATE_LIMIT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "app.api.main:app_factory", "--port",
                             str(port), "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        model = ""
        while time.monotonic() < deadline:
            try:
                model = httpx.get(f"{base}/v1/facilities/{ids[0]}/forecast", timeout=10).json().get("model", "")
            except (httpx.HTTPError, ValueError):
                model = ""
            if model == "gradient_boosting" and _board_ready(base, ids[0]):
                break
            time.sleep(0.5)
        latencies(base, ids, 30)  # warm-up
        plain, forecast = latencies(base, ids, requests)
        return float(np.median(plain)), float(np.median(forecast)), model
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _board_ready(base: str, fid: str) -> bool:
    """The board answers (the default horizons come back without a computation)."""
    r = httpx.get(f"{base}/v1/forecast/near", params={"lat": 41.11, "lon": 122.99, "radius_m": 100, "limit": 1})
    return r.status_code == 200


def main(
    facilities: int = typer.Option(1000), days: int = typer.Option(90), requests: int = typer.Option(400),
    base: str = typer.Option(os.environ.get("CITYPARK_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432")),
    keep: bool = typer.Option(False, help="keep the benchmark database"),
) -> None:
    settings = settings_for(base)
    end = datetime.fromtimestamp(datetime.now(UTC).timestamp() // 900 * 900, UTC)
    t0 = time.perf_counter()
    asyncio.run(prepare(settings, facilities, days, end))
    print(f"data: {facilities} facilities × {days} days of 15-minute counts "
          f"({facilities * days * 96:,} slots) written in {time.perf_counter() - t0:.0f} s (not timed below)")
    read_s, fit_s, metrics = asyncio.run(timed_training(settings, end, days))
    print(f"training: read grid {read_s:.1f} s + fit and held-out evaluation {fit_s:.1f} s = {read_s + fit_s:.1f} s "
          f"({metrics['samples']} samples, {metrics['facilities']} facilities)")
    ids = [f"bf-{i:04d}" for i in range(facilities)]
    plain, forecast, model = serve_and_measure(settings, ids, requests)
    print(f"GET /v1/facilities/{{id}} p50 {plain:.2f} ms; GET /v1/facilities/{{id}}/forecast p50 {forecast:.2f} ms "
          f"({model}); ratio {forecast / plain:.2f} (target ≤ 1.5)")
    if not keep:
        asyncio.run(database.drop_database(settings))


if __name__ == "__main__":
    typer.run(main)
