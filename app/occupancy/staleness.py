"""Staleness, the one rule every reader applies: a space (or a gate-counted facility) is ``unknown``
when it never reported or has been silent — no message of any kind, occupancy, heartbeat or count —
for ``stale_after_s``; ``last_seen`` is when it was last heard from. Python readers use
:func:`space_status`, SQL readers :func:`fresh_sql`, so every reader agrees.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal


def space_status(occupied: bool | None, last_seen: datetime | None, *, now: datetime,
                 stale_after_s: float) -> Literal["occupied", "free", "unknown"]:
    """``occupied``/``free``, or ``unknown`` when never reported or silent for ``stale_after_s``."""
    if occupied is None or last_seen is None or now - last_seen > timedelta(seconds=stale_after_s):
        return "unknown"
    return "occupied" if occupied else "free"


def fresh_sql(alias: str = "st", stale: str = ":stale", now: str = "now()") -> str:
    """SQL that is true when ``alias`` (a ``space_state`` or ``facility_counts`` row) was heard from
    within ``stale`` seconds (a bind parameter or expression) before ``now``; NULL when never."""
    return f"({alias}.last_seen > {now} - make_interval(secs => {stale}))"



def status_sql(alias: str = "ss", stale: str = "$1") -> str:
    """SQL for :func:`space_status` over a ``space_state`` alias (``stale``: seconds)."""
    return (f"CASE WHEN {alias}.occupied IS NULL OR NOT coalesce({fresh_sql(alias, stale)}, false) "
            f"THEN 'unknown' WHEN {alias}.occupied THEN 'occupied' ELSE 'free' END")
