"""Database bootstrap: create the database if missing, enable extensions, migrate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from alembic import command
from alembic.config import Config

from app.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent


def alembic_config(settings: Settings) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", settings.asyncpg_dsn.replace("%", "%%"))
    return config


def maintenance_dsn(settings: Settings) -> str:
    parts = urlsplit(settings.asyncpg_dsn)
    return urlunsplit(parts._replace(path="/postgres"))


async def create_database(settings: Settings, *, template: str | None = None) -> bool:
    """Create the settings' database unless it exists; True if it was created."""
    conn = await asyncpg.connect(maintenance_dsn(settings))
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", settings.database_name)
        if exists:
            return False
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{settings.database_name}"{suffix}')
        return True
    finally:
        await conn.close()


async def drop_database(settings: Settings) -> None:
    conn = await asyncpg.connect(maintenance_dsn(settings))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)')
    finally:
        await conn.close()


async def ensure_extensions(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    finally:
        await conn.close()


async def ensure_partitions(settings: Settings) -> None:
    """Monthly history partitions from a year back to two years ahead."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        for table in ("occupancy_events", "count_events"):
            await conn.execute(
                "SELECT citypark_ensure_month_partitions($1, "
                "(now() - interval '12 months')::date, (now() + interval '24 months')::date)",
                table)
    finally:
        await conn.close()


def upgrade(settings: Settings, revision: str = "heads") -> None:
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)


async def migrate(settings: Settings) -> None:
    """``citypark migrate``: database, PostGIS, ``alembic upgrade heads``, partitions."""
    await create_database(settings)
    await ensure_extensions(settings)
    await asyncio.to_thread(upgrade, settings)
    await ensure_partitions(settings)
