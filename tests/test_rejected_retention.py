"""Issue 13 item 9: rejected_messages no longer grows without bound — rows older than
CITYPARK_REJECTED_RETENTION_DAYS are deleted by the service itself (every API process, at
start and hourly), in bounded chunks; younger rows stay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from app.core.settings import Settings
from app.occupancy import service
from tests.conftest import app_client, poll


async def _insert(conn: asyncpg.Connection, ages_days: list[float], topic: str) -> None:
    await conn.executemany(
        "INSERT INTO rejected_messages (topic, payload, reason, received_at) "
        "VALUES ($1, '{}', 'bad_json', now() - make_interval(secs => $2))",
        [(topic, age * 86400.0) for age in ages_days])


async def _ages(conn: asyncpg.Connection, topic: str) -> list[int]:
    rows = await conn.fetch("SELECT floor(extract(epoch FROM now() - received_at) / 86400)::int AS d "
                            "FROM rejected_messages WHERE topic = $1 ORDER BY 1", topic)
    return [r["d"] for r in rows]


async def test_purge_deletes_only_rows_older_than_the_retention_in_chunks(fresh_db: Callable[..., Any]) -> None:
    settings: Settings = await fresh_db()
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await _insert(conn, [0.1, 5, 29.5, 30.5, 45, 400] + [31] * 25, "t/chunks")
        assert await service.purge_rejections(conn, retention_days=30, chunk=7) == 28  # 4 statements
        assert await _ages(conn, "t/chunks") == [0, 5, 29]
        assert await service.purge_rejections(conn, retention_days=30) == 0  # idempotent
        assert await service.purge_rejections(conn, retention_days=2) == 2
        assert await _ages(conn, "t/chunks") == [0]
    finally:
        await conn.close()


async def test_the_api_process_deletes_old_rejections_by_itself(fresh_db: Callable[..., Any]) -> None:
    settings: Settings = await fresh_db(rejected_retention_days=7)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await _insert(conn, [1, 6, 8, 90], "t/service")
        async with app_client(settings):  # no cron job, no command: the service's own task
            await poll(lambda: _only_young(conn), timeout=30)
        assert await _ages(conn, "t/service") == [1, 6]
    finally:
        await conn.close()


async def _only_young(conn: asyncpg.Connection) -> bool:
    return max(await _ages(conn, "t/service")) < 7
