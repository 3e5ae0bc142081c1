"""A database with generated gate-count history for forecast tests (made once per run)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.core.db import in_session, raw_connection
from app.core.settings import Settings
from app.forecast import synthetic
from app.history import service as history
from app.inventory import service as inventory

OPERATOR = "hist-op"
DAYS = 35
START = datetime(2026, 9, 1, tzinfo=UTC)  # before National Day: holidays are in the window


async def load_history(settings: Settings, hist: synthetic.History, path: Path) -> history.ImportReport:
    doc = synthetic.inventory(hist)
    await in_session(settings, lambda s: inventory.import_inventory(s, operator_id=OPERATOR, doc=doc))
    synthetic.write_counts_csv(hist, path)
    async with raw_connection(settings) as conn, conn.transaction():
        return await history.import_history(conn, path, operator_id=OPERATOR)


@pytest.fixture(scope="session")
async def forecast_db(fresh_db: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Settings of a database with 12 lots × 35 days of 15-minute counts, and their truth."""
    settings: Settings = await fresh_db(forecast_board_s=0)
    hist = synthetic.generate(12, DAYS, start=START, seed=7, prefix="fc")
    await load_history(settings, hist, tmp_path_factory.mktemp("fc") / "counts.csv")
    return {"settings": settings, "history": hist, "end": START + timedelta(days=DAYS)}


@pytest.fixture(scope="module")
async def lots(fresh_db: Callable[..., Any]) -> Settings:
    settings: Settings = await fresh_db(forecast_board_s=0)
    hist = synthetic.generate(2, 1, start=datetime(2026, 1, 1, tzinfo=UTC), prefix="imp")
    doc = synthetic.inventory(hist)
    doc["features"][0]["properties"]["capacity"] = 100
    doc["features"][1]["properties"].update(capacity=50, timezone="Europe/London")
    await in_session(settings, lambda s: inventory.import_inventory(s, operator_id=OPERATOR, doc=doc))
    return settings
