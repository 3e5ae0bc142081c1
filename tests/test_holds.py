"""The database, not the application, guarantees one active hold per space."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asyncpg.types import Range
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _now() -> None:
    """Each test's own NOW: one taken at import is minutes old by the time a long suite gets here."""
    global NOW
    NOW = datetime.now(UTC)


async def hold(db: AsyncSession, space: str, start: datetime, minutes: int = 10,
               status: str = "held") -> None:
    """Insert one hold on ``space``; fails if nothing was inserted (a misspelled space id)."""
    result = await db.execute(text(
        "INSERT INTO assignments (id, space_id, facility_id, status, hold, lat, lon, expires_at) "
        "SELECT gen_random_uuid(), :space, facility_id, :status, tstzrange(:start, :end), "
        "41.11, 122.99, :end FROM spaces WHERE id = :space"),
        {"space": space, "status": status, "start": start, "end": start + timedelta(minutes=minutes)})
    assert result.rowcount == 1, f"no hold inserted on {space!r}"


async def active_holds(db: AsyncSession, space: str) -> int:
    return int((await db.execute(text(
        "SELECT count(*) FROM assignments WHERE space_id = :s AND status IN ('held', 'reassigned') "
        "AND hold @> now()"), {"s": space})).scalar_one())


async def test_a_second_active_hold_on_a_space_is_refused(db: AsyncSession) -> None:
    await hold(db, "zqgc-lot-001", NOW)
    with pytest.raises(IntegrityError, match="ex_assignments_one_hold_per_space"):
        async with db.begin_nested():
            await hold(db, "zqgc-lot-001", NOW + timedelta(minutes=1))


async def test_holds_on_different_spaces_coexist(db: AsyncSession) -> None:
    await hold(db, "zqgc-lot-001", NOW)
    await hold(db, "zqgc-lot-002", NOW)
    assert (await active_holds(db, "zqgc-lot-001"), await active_holds(db, "zqgc-lot-002")) == (1, 1)


async def test_the_helper_notices_a_hold_that_was_not_inserted(db: AsyncSession) -> None:
    with pytest.raises(AssertionError, match="no hold inserted"):
        await hold(db, "zqgc-lot-0001", NOW)  # no such space


async def test_an_expired_hold_does_not_block_a_new_one(db: AsyncSession) -> None:
    await hold(db, "zqgc-lot-003", NOW - timedelta(minutes=30), minutes=10)
    await hold(db, "zqgc-lot-003", NOW)
    assert await active_holds(db, "zqgc-lot-003") == 1


async def test_a_cancelled_hold_does_not_block_a_new_one(db: AsyncSession) -> None:
    await hold(db, "zqgc-lot-004", NOW, status="cancelled")
    await hold(db, "zqgc-lot-004", NOW)
    assert await active_holds(db, "zqgc-lot-004") == 1


def test_range_type_is_what_asyncpg_sends() -> None:
    assert Range(NOW, NOW + timedelta(minutes=1)).lower == NOW
