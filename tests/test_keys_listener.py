"""Key revocation across processes: ``NOTIFY api_keys`` reaches every listener; without a
listener a cached key is trusted for only a second (``KEY_CACHE_TTL_S``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import create_engine
from app.core.settings import Settings
from app.keys import listener as keys_listener
from app.keys import service as keys_service
from tests.conftest import poll


@pytest.fixture
async def listening(db_settings: Settings) -> AsyncIterator[keys_listener.KeyListener]:
    listener = keys_listener.KeyListener(db_settings.model_copy(update={"key_cache_ttl_s": 3600.0}))
    listener.start()
    await poll(keys_service.invalidation_live, timeout=15)
    yield listener
    await listener.stop()


async def _committed_key(settings: Settings) -> tuple[str, keys_service.Principal]:
    engine = create_engine(settings, pool_size=1)
    try:
        async with AsyncSession(engine) as session, session.begin():
            plain, row = await keys_service.create_key(session, role="driver")
        async with AsyncSession(engine) as session:
            principal = await keys_service.authenticate_cached(session, key=plain)
    finally:
        await engine.dispose()
    assert principal is not None
    return plain, principal


async def test_a_notification_drops_the_key_from_the_cache(listening, db_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    plain, principal = await _committed_key(db_settings)
    assert keys_service.cached_principal(plain) == principal
    conn = await asyncpg.connect(db_settings.asyncpg_dsn)
    try:  # what revoke_key in another process sends (tests/scale checks that it does)
        async with conn.transaction():
            await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", principal.key_id)
            await conn.execute("SELECT pg_notify($1, $2)", keys_service.CHANNEL, str(principal.key_id))
    finally:
        await conn.close()
    # nothing here touched this process's cache, and its TTL is an hour: only the notification can
    await poll(lambda: keys_service.cached_principal(plain) is None, timeout=10)


async def test_without_a_listener_keys_are_trusted_for_a_second(db_settings: Settings) -> None:
    down = keys_listener.KeyListener(db_settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/nowhere"}))
    down.start()
    try:
        assert not keys_service.invalidation_live()
        assert keys_service._invalidation.ttl() == keys_service.KEY_CACHE_TTL_S == 1.0
        plain, principal = await _committed_key(db_settings)
        assert keys_service.cached_principal(plain) == principal
        await poll(lambda: keys_service.cached_principal(plain) is None, timeout=5)  # expired after 1 s
    finally:
        await down.stop()


async def test_a_listener_that_loses_its_connection_stops_trusting_the_cache(listening, db_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    plain, principal = await _committed_key(db_settings)
    assert keys_service.cached_principal(plain) == principal
    assert listening._conn is not None
    listening._conn.terminate()  # the connection is gone (database restart, network)
    await poll(lambda: not keys_service.invalidation_live(), timeout=10)
    assert keys_service.cached_principal(plain) is None  # the cache was emptied: ask the database again
    await poll(keys_service.invalidation_live, timeout=15)  # and it reconnects
