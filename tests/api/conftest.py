"""Fixtures of the API tests: the shared client without the facility cache, state helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from tests.conftest import app_client


@pytest.fixture
async def client(db_settings: Settings, db: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """The rolled-back client of tests/conftest.py, with the 1 s facility snapshot cache off."""
    async with app_client(db_settings, db) as c:
        c.app.state.facility_cache.ttl_s = 0  # type: ignore[attr-defined]
        yield c


async def set_spaces(
    db: AsyncSession, space_ids: Sequence[str], *, occupied: bool | None, age_s: float = 0,
) -> None:
    """Put spaces' current state as if their sensors reported ``age_s`` seconds ago."""
    seen = datetime.now(UTC) - timedelta(seconds=age_s)
    await db.execute(text(
        "UPDATE space_state SET occupied = :occupied, observed_at = :seen, since = :seen, last_seen = :seen "
        "WHERE space_id = ANY(:ids)"), {"occupied": occupied, "seen": seen, "ids": list(space_ids)})


async def facility_spaces(db: AsyncSession, facility_id: str) -> list[str]:
    rows = await db.execute(text("SELECT id FROM spaces WHERE facility_id = :f ORDER BY id"), {"f": facility_id})
    return list(rows.scalars())


async def set_count(
    db: AsyncSession, facility_id: str, *, free: int, total: int | None = None, age_s: float = 0,
) -> None:
    seen = datetime.now(UTC) - timedelta(seconds=age_s)
    await db.execute(text(
        "UPDATE facility_counts SET free = :free, total = coalesce(:total, total), observed_at = :seen, "
        "last_seen = :seen WHERE facility_id = :f"), {"free": free, "total": total, "seen": seen, "f": facility_id})


async def hold(db: AsyncSession, *, facility_id: str, space_id: str | None) -> None:
    """An active assignment holding ``space_id`` (or a facility-level hold with None)."""
    await db.execute(text(
        "INSERT INTO assignments (id, space_id, facility_id, status, hold, lat, lon, expires_at) "
        "VALUES (gen_random_uuid(), :s, :f, 'held', "
        "tstzrange(now() - interval '1 minute', now() + interval '10 minutes'), "
        "41.11, 122.99, now() + interval '10 minutes')"), {"s": space_id, "f": facility_id})
