"""Fixtures of the matching integration tests: committed databases with known occupancy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
import pytest

from app.core.settings import Settings


async def set_state(settings: Settings, space_ids: Iterable[str], *, occupied: bool,
                    age_s: float = 0.0) -> None:
    """Write ``space_state`` directly (committed): the given spaces read free or occupied."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute("""
            INSERT INTO space_state (space_id, occupied, since, observed_at, last_seen, source)
            SELECT id, $2, t, t, t, 'test' FROM unnest($1::text[]) id,
                   (SELECT now() - make_interval(secs => $3) AS t) n
            ON CONFLICT (space_id) DO UPDATE SET occupied = excluded.occupied, since = excluded.since,
                observed_at = excluded.observed_at, last_seen = excluded.last_seen""",
            list(space_ids), occupied, age_s)
    finally:
        await conn.close()


async def fetch(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def matching_db(fresh_db: Callable[..., Any]) -> Settings:
    """A committed demo database where every space reads free, shared by read-only tests."""
    settings: Settings = await fresh_db(batch_window_ms=0)
    ids = [r["id"] for r in await fetch(settings, "SELECT id FROM spaces")]
    await set_state(settings, ids, occupied=False)
    return settings


@pytest.fixture(scope="session")
async def scratch_db(fresh_db: Callable[..., Any]) -> Settings:
    """One committed demo database for the tests that write (reset before each, see below)."""
    settings: Settings = await fresh_db()
    return settings


@pytest.fixture
async def scratch(scratch_db: Settings) -> Callable[..., Settings]:
    """``scratch(**overrides)`` → settings on the scratch database, emptied of holds and state."""
    conn = await asyncpg.connect(scratch_db.asyncpg_dsn)
    try:
        await conn.execute("DELETE FROM assignments; DELETE FROM space_state; DELETE FROM facility_counts")
    finally:
        await conn.close()

    def variant(**overrides: Any) -> Settings:
        return scratch_db.model_copy(update=overrides)

    return variant
