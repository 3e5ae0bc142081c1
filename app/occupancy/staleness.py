"""Staleness, the one rule every reader applies: a space is ``unknown`` when it never reported
or its sensor (any message, occupancy or heartbeat) has been silent for ``stale_after_s``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal


def space_status(occupied: bool | None, last_seen: datetime | None, *, now: datetime,
                 stale_after_s: float) -> Literal["occupied", "free", "unknown"]:
    """``occupied``/``free``, or ``unknown`` when never reported or silent for ``stale_after_s``."""
    if occupied is None or last_seen is None or now - last_seen > timedelta(seconds=stale_after_s):
        return "unknown"
    return "occupied" if occupied else "free"


def status_sql(alias: str = "ss", stale_param: str = "$1") -> str:
    """SQL for the same status over a ``space_state`` alias; ``stale_param`` is seconds (float)."""
    return (f"CASE WHEN {alias}.occupied IS NULL OR {alias}.last_seen IS NULL "
            f"OR {alias}.last_seen < now() - make_interval(secs => {stale_param}) THEN 'unknown' "
            f"WHEN {alias}.occupied THEN 'occupied' ELSE 'free' END")
