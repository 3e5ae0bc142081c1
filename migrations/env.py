"""Alembic environment: async engine, geoalchemy2's helpers so autogenerate knows spatial columns."""

from __future__ import annotations

import asyncio

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy.engine import Connection

# each domain's models, imported to register their tables on Base.metadata
import app.assignments.models  # noqa: F401
import app.devices.models  # noqa: F401
import app.enforcement.models  # noqa: F401
import app.forecast.models  # noqa: F401
import app.inventory.models  # noqa: F401
import app.keys.models  # noqa: F401
import app.management.models  # noqa: F401
import app.occupancy.models  # noqa: F401
import app.passages.models  # noqa: F401
import app.standards.models  # noqa: F401
from app.core.db import Base, create_engine, include_object
from app.core.settings import Settings

config = context.config
target_metadata = Base.metadata


def _settings() -> Settings:
    url = config.get_main_option("sqlalchemy.url")
    return Settings(database_url=url) if url else Settings()


def _configure(connection: Connection | None = None, **kwargs: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_settings().sqlalchemy_url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(_settings(), pool_size=1)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
