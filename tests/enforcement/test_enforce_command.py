"""``citypark enforce`` as a process: catches up on start, follows new events, stops on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.conftest import ROOT, poll
from tests.enforcement.helpers import NO_PARKING_SPACE


async def _insert(dsn: str, occupied: bool, when: datetime) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        sensor = await conn.fetchval("SELECT id FROM sensors WHERE space_id = $1", NO_PARKING_SPACE)
        await conn.execute(
            "INSERT INTO occupancy_events (sensor_id, observed_at, space_id, occupied, source) "
            "VALUES ($1, $2, $3, $4, 'test')", sensor, when, NO_PARKING_SPACE, occupied)
        await conn.execute("UPDATE space_state SET last_seen = $1 WHERE space_id = $2", when, NO_PARKING_SPACE)
    finally:
        await conn.close()


async def _violation(dsn: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT kind, started_at, ended_at FROM violations WHERE space_id = $1", NO_PARKING_SPACE)
    finally:
        await conn.close()


async def test_enforce_command_detects_and_closes_violations(fresh_db) -> None:  # type: ignore[no-untyped-def]
    settings = await fresh_db()
    dsn = settings.asyncpg_dsn
    arrived = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    await _insert(dsn, True, arrived)  # before the process starts: found by the catch-up
    await _insert(dsn, True, datetime.now(UTC))  # and the sensor is still reporting
    env = {**os.environ, "CITYPARK_DATABASE_URL": settings.database_url}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "enforce", "--interval", "0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        found = await poll(lambda: _violation(dsn), timeout=30)
        assert found["kind"] == "no_parking"
        assert found["started_at"] == arrived + timedelta(seconds=settings.no_parking_grace_s)
        assert found["ended_at"] is None
        left = datetime.now(UTC).replace(microsecond=0)
        await _insert(dsn, False, left)
        async def closed() -> bool:
            row = await _violation(dsn)
            return row is not None and row["ended_at"] == left
        assert await poll(closed, timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
