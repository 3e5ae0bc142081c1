"""Behind PgBouncer in transaction mode: ``CITYPARK_DB_STATEMENT_CACHE_SIZE=0`` makes the app's
engine safe where asyncpg's default statement cache is not.

Four client connections share two server connections, a different one for each transaction
as it comes: a statement a client prepared (and cached) on one server connection does not exist
on the next (``prepared statement "__asyncpg_stmt_…__" does not exist``), and two processes'
numbered names collide on one; with the cache off and unique names neither can happen.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.db import create_engine
from app.core.settings import Settings
from tests.conftest import app_client
from tests.scale.harness import PgBouncer

pytestmark = pytest.mark.skipif(not (shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists()),
                                reason="pgbouncer is installed by deploy/local/services.sh")


@pytest.fixture
def bouncer(db_settings: Settings) -> Iterator[PgBouncer]:
    target = urlsplit(db_settings.asyncpg_dsn)
    b = PgBouncer(target.hostname or "127.0.0.1", target.port or 5432, pool_size=2).start()
    yield b
    b.remove()


async def _four_clients(settings: Settings) -> None:
    engine = create_engine(settings, pool_size=4, pool_pre_ping=False)
    try:
        async def client(n: int) -> None:
            async with engine.connect() as conn:
                for i in range(20):
                    await conn.execute(text("SELECT count(*) FROM spaces WHERE id <> :x"), {"x": f"{n}-{i}"})
                    await conn.commit()

        await asyncio.gather(*(client(n) for n in range(4)))
    finally:
        await engine.dispose()


async def test_the_default_statement_cache_breaks_behind_pgbouncer(bouncer: PgBouncer, db_settings: Settings) -> None:
    through = db_settings.model_copy(update={"database_url": bouncer.dsn(db_settings.database_name)})
    with pytest.raises(DBAPIError, match="prepared statement"):
        await _four_clients(through)


async def test_cache_size_zero_works_behind_pgbouncer(bouncer: PgBouncer, db_settings: Settings) -> None:
    through = db_settings.model_copy(update={"database_url": bouncer.dsn(db_settings.database_name),
                                             "db_statement_cache_size": 0,
                                             "database_direct_url": db_settings.database_url})
    await _four_clients(through)
    async with app_client(through) as client:  # the whole app, LISTEN on the direct URL
        answers = await asyncio.gather(*(client.get("/v1/facilities/cqgc-lot") for _ in range(8)),
                                       *(client.get("/v1/facilities/cqgc-lot/history") for _ in range(4)))
        assert {a.status_code for a in answers} == {200}
