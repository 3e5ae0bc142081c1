"""Retention run by the service itself: every API process, at start and then hourly, clears plate
hashes older than ``CITYPARK_PLATE_RETENTION_DAYS`` (the ingest writers do the same) and deletes
rejected messages older than ``CITYPARK_REJECTED_RETENTION_DAYS``, so no deployment keeps them
longer, or lets ``rejected_messages`` grow without bound, by forgetting a cron job. Idempotent;
concurrent runs are harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from app.core.db import raw_connection
from app.occupancy import service as occupancy
from app.passages import service

EVERY_S = 3600.0
log = logging.getLogger(__name__)


async def run_once(settings: Any) -> tuple[int, int]:
    """(plate hashes cleared, rejected messages deleted)."""
    async with raw_connection(settings) as conn:
        plates = await service.purge_plates(conn, retention_days=settings.plate_retention_days)
        rejected = await occupancy.purge_rejections(conn, retention_days=settings.rejected_retention_days)
    return plates, rejected


async def _forever(settings: Any) -> None:
    while True:
        try:
            plates, rejected = await run_once(settings)
            if plates or rejected:
                log.info("retention: cleared %s plate hashes, deleted %s rejected messages", plates, rejected)
        except Exception as exc:  # the database may be away: try again next round
            log.warning("retention failed: %s", exc)
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
