"""Helpers for enforcement tests: write history straight into the tables, run detection.

History is the source of truth, so tests insert ``occupancy_events`` (and ``space_state``'s
``last_seen``) with SQL instead of going through the ingest worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.enforcement import violations as violations_service

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A week in the demo's time zone: 2026-11-23 is a Monday.
MONDAY = datetime(2026, 11, 23, tzinfo=SHANGHAI)

CURB_SPACE = "s219-03-010"  # curb s219-03: 120 min, Mo-Sa 08:00-20:00
LOADING_SPACE = "s219-00-001"  # its own rule: 30 min, Mo-Su 07:00-19:00, on a 120-min curb
MORNING_BAN_SPACE = "s51-05-010"  # 120 min Mo-Sa 08-20 and no parking Mo-Fr 07:00-08:30
NO_PARKING_SPACE = "s51-04-010"  # no parking at any time


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Local time on day ``day`` of the test week (0 = Monday)."""
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


async def sensor_of(db: AsyncSession, space_id: str) -> str:
    sensor = await db.scalar(text("SELECT id FROM sensors WHERE space_id = :s"), {"s": space_id})
    return str(sensor or f"test-{space_id}")


async def add_events(
    db: AsyncSession, space_id: str, events: Iterable[tuple[datetime, bool]], *, last_seen: bool = True
) -> None:
    """Insert events (re-inserting one is a no-op, as in ingest) and move ``last_seen`` forward."""
    sensor = await sensor_of(db, space_id)
    rows = [{"sensor": sensor, "at": when, "space": space_id, "occ": occupied} for when, occupied in events]
    for row in rows:
        await db.execute(text(
            "INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, source) "
            "VALUES (:sensor, :at, NULL, :space, :occ, 'test') ON CONFLICT DO NOTHING"), row)
    if last_seen and rows:
        await db.execute(text(
            "UPDATE space_state SET last_seen = greatest(last_seen, :at) WHERE space_id = :space"),
            {"at": max(r["at"] for r in rows), "space": space_id})


async def clear_space(db: AsyncSession, space_id: str) -> None:
    for table in ("occupancy_events", "violations"):
        await db.execute(text(f"DELETE FROM {table} WHERE space_id = :s"), {"s": space_id})
    await db.execute(text("UPDATE space_state SET last_seen = NULL WHERE space_id = :s"), {"s": space_id})


async def detect(
    db: AsyncSession, settings: Settings, space_id: str, *, now: datetime, since: datetime | None = None
) -> violations_service.Detected:
    since = since or at(-1, 0)
    return await violations_service.detect(db, changed={space_id: since}, now=now, settings=settings)


async def stored(db: AsyncSession, space_id: str) -> list[dict[str, Any]]:
    rows = await db.execute(text(
        "SELECT id, kind, rule_id, stay_since, started_at, ended_at, limit_minutes, facility_id "
        "FROM violations WHERE space_id = :s ORDER BY started_at, kind"), {"s": space_id})
    return [dict(r) for r in rows.mappings()]


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


async def add_violation(
    db: AsyncSession, space_id: str, *, kind: str = "overstay", started_at: datetime,
    ended_at: datetime | None = None, limit_minutes: int | None = 120,
) -> int:
    """Store a violation directly (for the read endpoints), at its space's position."""
    return int(await db.scalar(text(
        "INSERT INTO violations (space_id, facility_id, kind, stay_since, started_at, ended_at, "
        "limit_minutes, geom) SELECT id, facility_id, :kind, :since, :started, :ended, :lim, geom "
        "FROM spaces WHERE id = :s RETURNING id"),
        {"s": space_id, "kind": kind, "since": started_at - timedelta(minutes=limit_minutes or 5),
         "started": started_at, "ended": ended_at, "lim": limit_minutes}))


async def space_position(db: AsyncSession, space_id: str) -> tuple[float, float]:
    row = (await db.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM spaces WHERE id = :s"),
                            {"s": space_id})).one()
    return float(row[0]), float(row[1])
