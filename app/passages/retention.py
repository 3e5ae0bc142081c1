"""Plate retention run by the service itself: every API process clears plate hashes older than
``CITYPARK_PLATE_RETENTION_DAYS`` at start and then hourly (the ingest writers do the same),
so no deployment keeps them longer by forgetting a cron job. Idempotent; concurrent runs are harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from app.core.db import raw_connection
from app.passages import service

EVERY_S = 3600.0
log = logging.getLogger(__name__)


async def run_once(settings: Any) -> int:
    async with raw_connection(settings) as conn:
        return await service.purge_plates(conn, retention_days=settings.plate_retention_days)


async def _forever(settings: Any) -> None:
    while True:
        try:
            if cleared := await run_once(settings):
                log.info("plate retention: cleared %s plate hashes", cleared)
        except Exception as exc:  # the database may be away: try again next round
            log.warning("plate retention failed: %s", exc)
        await asyncio.sleep(EVERY_S)  # the retention period, not a wait for a result


def start(app: Any) -> None:
    """Start the hourly purge for the app (``app.state.settings``)."""
    app.state.plate_retention_task = asyncio.create_task(_forever(app.state.settings))


async def stop(app: Any) -> None:
    task: Any = getattr(app.state, "plate_retention_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
