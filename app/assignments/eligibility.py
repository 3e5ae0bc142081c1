"""Which facilities and spaces may be offered right now, beyond what SQL can see.

Opening hours, sharing windows (``public_hours``, 停车资源共享) and no-parking rules are
evaluated in Python with ``app.core.hours`` (local time, Asia/Shanghai by default) and
cached for ``ttl_s``; queries then exclude the resulting id lists. Also kept: when each open
facility closes (so a space whose sharing window ends soon costs more) and the time limits in
force (so a limit shorter than the intended stay costs more).
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core import hours

FACILITIES_SQL = text("SELECT id, closed, counted, opening_hours, public_hours FROM facilities")
RULES_SQL = text(
    "SELECT facility_id, space_id, kind, max_stay_minutes, day_mask, start_time, end_time, timezone "
    "FROM parking_rules WHERE zone IS NULL"
)


@dataclass
class Eligibility:
    """Closed facilities, blocked spaces, closing times and limits at ``taken_at``."""

    closed: set[str] = field(default_factory=set)
    counted: set[str] = field(default_factory=set)  # open gate-counted facilities
    flagged_closed: set[str] = field(default_factory=set)  # facilities.closed set (not by hours or rules)
    blocked_spaces: set[str] = field(default_factory=set)
    closes_at: dict[str, datetime] = field(default_factory=dict)
    limit_min: dict[str, int] = field(default_factory=dict)  # facility or space id → minutes
    taken_at: float = 0.0

    def available_minutes(self, facility_id: str, now: datetime) -> float | None:
        """Minutes until ``facility_id`` stops being usable (None: not today)."""
        end = self.closes_at.get(facility_id)
        return None if end is None else max((end - now).total_seconds() / 60, 0.0)

    def max_stay(self, facility_id: str, space_id: str | None) -> int | None:
        """The time limit in force for a space (its own, else its facility's)."""
        return self.limit_min.get(space_id or "") or self.limit_min.get(facility_id)


class EligibilityCache:
    """Recomputes :class:`Eligibility` at most every ``ttl_s`` seconds."""

    def __init__(self, timezone: str, ttl_s: float = 30.0) -> None:
        self.zone, self.ttl_s = ZoneInfo(timezone), ttl_s
        self.current = Eligibility()

    async def get(self, conn: AsyncConnection | AsyncSession) -> Eligibility:
        """The cached eligibility, reloaded when older than the TTL."""
        if clock.monotonic() - self.current.taken_at > self.ttl_s:
            self.current = await load(conn, datetime.now(self.zone))
        return self.current

    def invalidate(self) -> None:
        """Force a reload on next use (inventory or rules changed)."""
        self.current.taken_at = 0.0


async def load(conn: AsyncConnection | AsyncSession, local_now: datetime) -> Eligibility:
    """Evaluate hours and rules of every facility and rule at ``local_now`` (aware)."""
    out = Eligibility(taken_at=clock.monotonic())
    for row in (await conn.execute(FACILITIES_SQL)).mappings():
        _facility(out, row, local_now)
    for rule in (await conn.execute(RULES_SQL)).mappings():
        if _in_force(rule, local_now):
            _apply_rule(out, rule)
    return out


def _facility(out: Eligibility, row: Any, local_now: datetime) -> None:
    specs = (row["opening_hours"], row["public_hours"])
    if row["closed"]:
        out.flagged_closed.add(row["id"])
    if row["closed"] or not all(hours.is_open(spec, local_now) for spec in specs):
        out.closed.add(row["id"])
        return
    if row["counted"]:
        out.counted.add(row["id"])
    ends = [m for spec in specs if (m := hours.minutes_until_close(spec, local_now)) is not None]
    if ends:
        out.closes_at[row["id"]] = local_now + timedelta(minutes=min(ends))


def _apply_rule(out: Eligibility, rule: Any) -> None:
    target = rule["space_id"] or rule["facility_id"]
    if rule["kind"] == "no_parking":
        (out.blocked_spaces if rule["space_id"] else out.closed).add(target)
    elif rule["max_stay_minutes"]:
        out.limit_min[target] = min(out.limit_min.get(target, 10**9), rule["max_stay_minutes"])


def _in_force(rule: Any, local_now: datetime) -> bool:
    """Whether a rule's daily window (which may cross midnight) contains ``local_now``."""
    now = local_now.astimezone(ZoneInfo(rule["timezone"]))
    start, end = _minutes(rule["start_time"]), _minutes(rule["end_time"])
    length = hours.span_minutes(start, end)
    for back in (0, 1):
        day = now - timedelta(days=back)
        begin = day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=start)
        if rule["day_mask"] >> day.weekday() & 1 and begin <= now < begin + timedelta(minutes=length):
            return True
    return False


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute
