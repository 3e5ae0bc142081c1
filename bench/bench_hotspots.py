"""Benchmark: violation hotspots for a month over 1,000,000 historical violations.

    .venv/bin/python bench/bench_hotspots.py [--violations 1000000] [--spaces 20000] [--cell-m 200]

On a scratch database (created, migrated and dropped by the script): ``--spaces`` synthetic
spaces over the demo district, ``--violations`` violations spread over one month (October
2026), and the occupancy history behind them (each violation's stay: an ``occupied`` and a
``free`` event), so the exposure (occupied-space-hours) is computed from real rows. It then
times, in the same run and on the same rows, ``hotspots()`` (the service behind
``GET /v1/enforcement/hotspots``: grid cells, minutes, exposure, rate) against a plain
``SELECT count(*)`` with the same period filter, and prints both and their ratio.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import UTC, datetime

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import migrate as database
from app.core.db import create_engine, raw_connection
from app.core.settings import Settings, get_settings
from app.enforcement import hotspots as hotspots_service
from app.enforcement.violations import Query
from app.inventory import seed as seed_service

SINCE = datetime(2026, 10, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 1, tzinfo=UTC)

# One violation per row of generate_series: a random space, a random start in the month, an
# overstay of 5-120 min after a 2 h limit (or a no-parking stay after the 5 min grace).
FILL_VIOLATIONS = """
INSERT INTO violations (space_id, facility_id, rule_id, kind, stay_since, started_at, ended_at,
                        limit_minutes, geom)
SELECT s.id, s.facility_id, NULL, k.kind, v.start - make_interval(mins => k.lim), v.start,
       v.start + make_interval(mins => 5 + (random() * 115)::int), k.lim, s.geom
FROM (SELECT g, $1::timestamptz + random() * ($2::timestamptz - $1::timestamptz) AS start,
             1 + (random() * ($4 - 1))::int AS n
      FROM generate_series(1, $3) AS g) AS v
JOIN bench_space s ON s.n = v.n
CROSS JOIN LATERAL (SELECT CASE WHEN v.g % 10 = 0 THEN 'no_parking' ELSE 'overstay' END AS kind,
                           CASE WHEN v.g % 10 = 0 THEN 5 ELSE 120 END AS lim) AS k
ON CONFLICT DO NOTHING
"""

FILL_EVENTS = """
INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, source)
SELECT 'm-' || v.space_id, t.at, NULL, v.space_id, t.occupied, 'bench'
FROM violations v
CROSS JOIN LATERAL (VALUES (v.stay_since, true), (v.ended_at, false)) AS t(at, occupied)
ON CONFLICT DO NOTHING
"""


def main(
    violations: int = typer.Option(1_000_000, help="historical violations in the month"),
    spaces: int = typer.Option(20_000, help="synthetic spaces they are spread over"),
    cell_m: float = typer.Option(200.0, help="grid cell side in metres"),
    repeats: int = typer.Option(3, help="timed runs of each query (the median is printed)"),
) -> None:
    """Build the scratch database, time both queries, print the figures, drop the database."""
    base = get_settings()
    name = f"citypark_bench_hotspots_{os.getpid()}"
    settings = base.model_copy(update={"database_url": base.asyncpg_dsn.rsplit("/", 1)[0] + "/" + name})
    asyncio.run(_run(settings, violations=violations, spaces=spaces, cell_m=cell_m, repeats=repeats))


async def _run(settings: Settings, *, violations: int, spaces: int, cell_m: float, repeats: int) -> None:
    await database.migrate(settings)
    try:
        await _fill(settings, violations=violations, spaces=spaces)
        hot, count, cells = await _time(settings, cell_m=cell_m, repeats=repeats)
        print(f"violations in the month        {int(count['rows']):>12,}")
        print(f"hotspot cells ({cell_m:.0f} m)          {cells:>12,}")
        print(f"count(*) over the same rows    {count['seconds'] * 1000:>12.1f} ms")
        print(f"hotspots (cells+exposure)      {hot['seconds'] * 1000:>12.1f} ms")
        print(f"hotspots by=hour               {hot['by_hour'] * 1000:>12.1f} ms")
        print(f"ratio hotspots / count(*)      {hot['seconds'] / count['seconds']:>12.1f} x")
    finally:
        await database.drop_database(settings)


async def _fill(settings: Settings, *, violations: int, spaces: int) -> None:
    started = time.monotonic()
    async with raw_connection(settings) as conn:
        await seed_service.seed_synthetic(conn, n=spaces, seed=1)
        await conn.execute("CREATE TABLE bench_space AS SELECT row_number() OVER (ORDER BY id) AS n, id, "
                           "facility_id, geom FROM spaces")
        await conn.execute("CREATE UNIQUE INDEX ON bench_space (n)")
        await conn.execute(FILL_VIOLATIONS, SINCE, UNTIL, violations, spaces)
        await conn.execute(FILL_EVENTS)
        await conn.execute("DROP TABLE bench_space")
        await conn.execute("VACUUM ANALYZE")
    print(f"filled in {time.monotonic() - started:.0f} s")


async def _time(settings: Settings, *, cell_m: float, repeats: int) -> tuple[dict[str, float], dict[str, float], int]:
    engine = create_engine(settings, pool_size=1)
    query = Query(since=SINCE, until=UNTIL)
    where, params = query.where()
    hot_s, hour_s, count_s = [], [], []
    try:
        async with AsyncSession(engine) as session:
            for _ in range(repeats):
                t0 = time.perf_counter()
                rows = await session.scalar(text(f"SELECT count(*) FROM violations v WHERE {where}"), params)
                count_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                fc = await hotspots_service.hotspots(session, query=query, cell_m=cell_m, now=UNTIL,
                                                     tz=settings.timezone)
                hot_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await hotspots_service.hotspots(session, query=query, cell_m=cell_m, now=UNTIL,
                                                tz=settings.timezone, by_hour=True)
                hour_s.append(time.perf_counter() - t0)
    finally:
        await engine.dispose()
    assert sum(f["properties"]["count"] for f in fc["features"]) == rows
    return ({"seconds": statistics.median(hot_s), "by_hour": statistics.median(hour_s)},
            {"seconds": statistics.median(count_s), "rows": float(rows or 0)}, len(fc["features"]))


if __name__ == "__main__":
    typer.run(main)
