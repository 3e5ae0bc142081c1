"""Ingest health in the API's ``/metrics``: rejected messages counted from their table.

The ingest workers serve their own metrics (rates, batch sizes, lag; ``citypark ingest
--metrics-port``); rejections also land in ``rejected_messages`` from every worker and from
the HTTP pushes, so the API reports them for the whole deployment as
``citypark_rejected_messages{reason, source}``, refreshed every ``REFRESH_S`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

router = APIRouter()
log = logging.getLogger(__name__)
REFRESH_S = 15.0
COUNT_SQL = text("SELECT split_part(reason, ':', 1) AS reason, source, count(*) AS n "
                 "FROM rejected_messages GROUP BY 1, 2")


class RejectedCollector(Collector):
    """Yields the last counts read from the table (scrapes never touch the database)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("citypark_rejected_messages", "Rejected messages stored, by reason and source",
                                   labels=["reason", "source"])
        for (reason, source), n in sorted(self.counts.items()):
            family.add_metric([reason, source], n)
        yield family


COLLECTOR = RejectedCollector()
REGISTRY.register(COLLECTOR)


async def refresh(app: FastAPI) -> None:
    """Read the counts once (used by the background task and by tests)."""
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(COUNT_SQL)).all()
    COLLECTOR.counts = {(r.reason, r.source): int(r.n) for r in rows}


async def _refresh_forever(app: FastAPI) -> None:
    while True:
        try:
            await refresh(app)
        except Exception as exc:  # the database may be away; metrics must not take the API down
            log.warning("could not count rejected messages: %s", exc)
        await asyncio.sleep(REFRESH_S)  # the refresh period


def start(app: FastAPI) -> None:
    """Count rejected messages for /metrics every ``REFRESH_S`` in the background."""
    app.state.rejected_metrics_task = asyncio.create_task(_refresh_forever(app))


async def stop(app: FastAPI) -> None:
    task: Any = getattr(app.state, "rejected_metrics_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
