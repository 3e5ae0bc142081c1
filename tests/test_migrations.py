"""Migrations go up and down on an empty database, and match the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from app.core import migrate as database
from app.core.db import Base, create_engine, include_object
from app.core.settings import Settings
from tests.conftest import RUN_ID, make_settings

TABLES = {"operators", "facilities", "spaces", "sensors", "space_state", "facility_counts",
          "occupancy_events", "count_events", "rejected_messages", "parking_rules",
          "violations", "assignments", "api_keys"}


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "UNION SELECT relname FROM pg_class WHERE relkind = 'p'")
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def test_up_down_up_on_an_empty_database() -> None:
    settings = make_settings(f"citypark_t_{RUN_ID}_mig")
    try:
        await database.migrate(settings)
        assert TABLES <= await _tables(settings.asyncpg_dsn)
        await asyncio.to_thread(database.downgrade, settings, "base")
        assert not (TABLES & await _tables(settings.asyncpg_dsn))
        await asyncio.to_thread(database.upgrade, settings)
        assert TABLES <= await _tables(settings.asyncpg_dsn)
        assert not await _drift(settings)
    finally:
        await database.drop_database(settings)


async def _drift(settings: Settings) -> list[object]:
    """What autogenerate would still add or drop: the models and migrations must agree."""

    def compare(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        return list(compare_metadata(context, Base.metadata))

    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_history_tables_are_partitioned_by_month(db_settings) -> None:  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(db_settings.asyncpg_dsn)
    try:
        parts = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'occupancy_events'::regclass")
    finally:
        await conn.close()
    names = {r[0] for r in parts}
    assert "occupancy_events_default" in names
    assert "occupancy_events_p202611" in names


def test_every_revision_is_reversible() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(database.alembic_config(make_settings("x")))
    for rev in script.walk_revisions():
        source = Path(rev.path).read_text(encoding="utf-8")
        body = source.split("def downgrade() -> None:", 1)[1].strip()
        assert body not in ("", "pass"), f"{rev.revision} has no downgrade"
