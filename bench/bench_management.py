"""Benchmark: utilization by hour over a month of 20,000 spaces (2,000,000 events).

    .venv/bin/python bench/bench_management.py [--events 2000000] [--spaces 20000]

On a scratch database (created, migrated and dropped by the script): ``--spaces`` synthetic
spaces over the demo district and ``--events`` occupancy events spread over October 2026
(each space's events alternate occupied/free at random times). It times the first rollup of
the month (``rollups.refresh``), an incremental refresh after one ingest batch (2,000 events
in the last hour), and then, in the same run and on the same rows, ``utilization(by=hour)``
(the service behind ``GET /v1/management/utilization?by=hour``, medians included) against a
plain ``SELECT count(*)`` over the month's events; it prints them and the ratio (target ≤ 20×).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import migrate as database
from app.core.db import create_engine, raw_connection
from app.core.settings import Settings, get_settings
from app.inventory import seed as seed_service
from app.management import rollups, utilization
from app.management.utilization import Period

SINCE = datetime(2026, 10, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 1, tzinfo=UTC)

FILL_EVENTS = """
INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, source)
SELECT 'm-' || id, at, NULL, id, row_number() OVER (PARTITION BY id ORDER BY at) % 2 = 1, 'bench'
FROM (SELECT s.id, $1::timestamptz + random() * ($2::timestamptz - $1::timestamptz) AS at
      FROM spaces s CROSS JOIN generate_series(1, $3) AS g) AS x
ON CONFLICT DO NOTHING
"""
BATCH = """
INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, source)
SELECT 'm-' || id, CAST(:u AS timestamptz) - random() * interval '1 hour', NULL, id, random() < 0.5, 'bench'
FROM (SELECT id FROM spaces ORDER BY random() LIMIT :n) AS s
ON CONFLICT DO NOTHING
"""


def main(
    events: int = typer.Option(2_000_000, help="occupancy events in the month"),
    spaces: int = typer.Option(20_000, help="synthetic spaces"),
    repeats: int = typer.Option(5, help="timed runs of each query (the median is printed)"),
) -> None:
    """Build the scratch database, time the rollups and both queries, print, drop the database."""
    base = get_settings()
    name = f"citypark_bench_management_{os.getpid()}"
    settings = base.model_copy(update={"database_url": base.asyncpg_dsn.rsplit("/", 1)[0] + "/" + name})
    asyncio.run(_run(settings, events=events, spaces=spaces, repeats=repeats))


async def _run(settings: Settings, *, events: int, spaces: int, repeats: int) -> None:
    await database.migrate(settings)
    try:
        await _fill(settings, events=events, spaces=spaces)
        engine = create_engine(settings, pool_size=1)
        try:
            first, incremental = await _refresh(engine, settings)
            use, count, rows, groups = await _time(engine, repeats=repeats)
        finally:
            await engine.dispose()
        print(f"events in the month                {rows:>12,}")
        print(f"first rollup of the month          {first:>12.1f} s")
        print(f"refresh after one 2,000-event batch {incremental * 1000:>11.0f} ms")
        print(f"count(*) over the month's events   {count * 1000:>12.1f} ms")
        print(f"utilization by=hour ({groups} groups)   {use * 1000:>12.1f} ms")
        print(f"ratio utilization / count(*)       {use / count:>12.1f} x   (target <= 20 x)")
    finally:
        await database.drop_database(settings)


async def _fill(settings: Settings, *, events: int, spaces: int) -> None:
    started = time.monotonic()
    async with raw_connection(settings) as conn:
        await seed_service.seed_synthetic(conn, n=spaces, seed=1)
        await conn.execute(FILL_EVENTS, SINCE, UNTIL, max(1, events // spaces))
        await conn.execute("VACUUM ANALYZE")
    print(f"filled in {time.monotonic() - started:.0f} s")


async def _refresh(engine: object, settings: Settings) -> tuple[float, float]:
    hold = settings.management_hold_s
    async with AsyncSession(engine) as session:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        async with session.begin():
            await rollups.refresh(session, now=UNTIL, hold_s=hold)
        first = time.perf_counter() - t0
        await session.execute(text("ANALYZE management_hourly, management_stays"))  # as autovacuum would
        await session.commit()
        async with session.begin():
            await session.execute(text(BATCH),
                                  {"u": UNTIL + timedelta(minutes=59), "n": 2000})
        t0 = time.perf_counter()
        async with session.begin():
            await rollups.refresh(session, now=UNTIL + timedelta(hours=1), hold_s=hold)
        incremental = time.perf_counter() - t0
    return first, incremental


async def _time(engine: object, *, repeats: int) -> tuple[float, float, int, int]:
    period = Period(SINCE, UNTIL)
    use_s, count_s = [], []
    async with AsyncSession(engine) as session:  # type: ignore[arg-type]
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = await session.scalar(text(
                "SELECT count(*) FROM occupancy_events WHERE observed_at >= :a AND observed_at < :b"),
                {"a": SINCE, "b": UNTIL})
            count_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            items = await utilization.utilization(session, period=period, by="hour")
            use_s.append(time.perf_counter() - t0)
    assert len(items) == 24
    assert all(i["mean_occupancy"] is not None for i in items)
    return statistics.median(use_s), statistics.median(count_s), int(rows or 0), len(items)


if __name__ == "__main__":
    typer.run(main)
