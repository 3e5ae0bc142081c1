"""Demand-responsive pricing, SFpark's rule: per facility (a curb facility is a block) and time
band, move the hourly fee one step toward a target occupancy band, at most once per period,
never below the floor nor above the cap.

- occupancy above the band's top → ``+step``; below its bottom → ``−step``; inside → 0;
- no change when the last recorded change of that facility and band is less than
  ``period_days`` old, or when the step would pass the floor or the cap;
- the current fee is the last recorded change, else the inventory's ``fee`` when it states
  one hourly rate (``5元/小时``, ``2 元/时``, ``3/h``); otherwise none is known and only the
  direction is recommended.

Bands are local to the facility's time zone: weekday morning 07–11, midday 11–16, evening
16–21, weekend 07–21 (Saturday and Sunday); other hours are not priced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput
from app.management.utilization import Period

# band → (ISO weekdays, first local hour, end local hour)
BANDS: dict[str, tuple[tuple[int, ...], int, int]] = {
    "weekday_morning": ((1, 2, 3, 4, 5), 7, 11),
    "weekday_midday": ((1, 2, 3, 4, 5), 11, 16),
    "weekday_evening": ((1, 2, 3, 4, 5), 16, 21),
    "weekend": ((6, 7), 7, 21),
}
COLUMNS = ("facility_id", "facility_name", "band", "occupancy", "current_fee", "change", "recommended_fee",
           "reason", "last_change_at")
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:元|¥|CNY|RMB)?\s*(?:/|每)\s*(?:小时|时|h\b|hour)", re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    low: float = 0.60
    high: float = 0.80
    step: float = 0.5
    floor: float = 0.0
    cap: float = 20.0
    period_days: int = 28


@dataclass(frozen=True)
class Recommendation:
    change: float
    recommended_fee: float | None
    reason: str


def parse_target(text_value: str) -> tuple[float, float]:
    """``"60-80"`` (percent) → ``(0.6, 0.8)``."""
    match = re.fullmatch(r"\s*(\d{1,3}(?:\.\d+)?)\s*-\s*(\d{1,3}(?:\.\d+)?)\s*", text_value)
    if not match or not 0 <= float(match[1]) < float(match[2]) <= 100:
        raise InvalidInput("target: give a band of percentages like 60-80")
    return float(match[1]) / 100, float(match[2]) / 100


def parse_fee(fee: str | None) -> float | None:
    """The hourly rate an inventory ``fee`` states, when it states exactly one; else None."""
    rates = {float(m[1]) for m in _RATE.finditer(fee or "")}
    return rates.pop() if len(rates) == 1 else None


def band_of(weekday: int, hour: int) -> str | None:
    """The band of a local ISO weekday and hour, or None (not priced)."""
    return next((b for b, (days, a, z) in BANDS.items() if weekday in days and a <= hour < z), None)


def recommend(
    *, occupancy: float | None, current_fee: float | None, last_change: datetime | None, as_of: datetime,
    rule: Rule,
) -> Recommendation:
    """Apply the rule to one facility and band."""
    pct = f"{rule.low:.0%}–{rule.high:.0%}"
    if occupancy is None:
        return Recommendation(0.0, current_fee, "no occupancy data in this band: no change")
    if last_change is not None and as_of - last_change < timedelta(days=rule.period_days):
        return Recommendation(0.0, current_fee, f"fee last changed {last_change:%Y-%m-%d}, less than "
                              f"{rule.period_days} days ago: at most one change per period")
    seen = f"occupancy {occupancy:.0%}"
    if rule.low <= occupancy <= rule.high:
        return Recommendation(0.0, current_fee, f"{seen} is inside the target {pct}: keep the fee")
    up = occupancy > rule.high
    change = rule.step if up else -rule.step
    why = f"{seen} is {'above' if up else 'below'} the target {pct}: {'raise' if up else 'lower'} by {rule.step:g}"
    if current_fee is None:
        return Recommendation(change, None, why + "; no current fee is known (the inventory states no hourly rate)")
    new = round(current_fee + change, 2)
    if new > rule.cap + 1e-9 or new < rule.floor - 1e-9:
        limit = f"the cap {rule.cap:g}" if up else f"the floor {rule.floor:g}"
        return Recommendation(0.0, current_fee, f"{seen} is outside the target {pct}, but a step would pass {limit}")
    return Recommendation(change, new, f"{why} to {new:g}")


_BAND_OCCUPANCY = """
SELECT r.facility_id, r.local_weekday AS wd, r.local_hour AS hr, sum(r.occupied_s) AS occ, sum(r.known_s) AS known
FROM management_hourly r
WHERE r.hour >= :since AND r.hour < :until GROUP BY 1, 2, 3
"""
_FACILITIES = """
SELECT f.id, f.name, f.fee,
       (SELECT json_object_agg(band, json_build_array(fee, changed_at)) FROM (
            SELECT DISTINCT ON (band) band, fee, changed_at FROM management_price_changes c
            WHERE c.facility_id = f.id ORDER BY band, changed_at DESC) AS last) AS changes
FROM facilities f WHERE NOT f.closed ORDER BY f.id
"""


async def recommendations(
    session: AsyncSession, *, period: Period, rule: Rule, as_of: datetime,
) -> list[dict[str, Any]]:
    """One item per facility and band (facilities sorted by id, bands in ``BANDS`` order)."""
    sums: dict[tuple[str, str], list[float]] = {}
    for row in await session.execute(text(_BAND_OCCUPANCY), {"since": period.since, "until": period.until}):
        band = band_of(row.wd, row.hr)
        if band is not None:
            acc = sums.setdefault((row.facility_id, band), [0.0, 0.0])
            acc[0] += float(row.occ)
            acc[1] += float(row.known)
    items = []
    for fac in await session.execute(text(_FACILITIES)):
        for band in BANDS:
            items.append(_item(fac, band, sums.get((fac.id, band)), rule=rule, as_of=as_of))
    return items


def _item(fac: Any, band: str, acc: list[float] | None, *, rule: Rule, as_of: datetime) -> dict[str, Any]:
    occupancy = acc[0] / acc[1] if acc and acc[1] > 0 else None
    last = (fac.changes or {}).get(band)
    last_at = datetime.fromisoformat(last[1]) if last else None
    current = float(last[0]) if last else parse_fee(fac.fee)
    rec = recommend(occupancy=occupancy, current_fee=current, last_change=last_at, as_of=as_of, rule=rule)
    return {"facility_id": fac.id, "facility_name": fac.name, "band": band,
            "occupancy": None if occupancy is None else round(occupancy, 4), "current_fee": current,
            "change": rec.change, "recommended_fee": rec.recommended_fee, "reason": rec.reason,
            "last_change_at": last_at}


async def record(session: AsyncSession, *, items: list[dict[str, Any]], at: datetime) -> int:
    """Record the recommended changes (non-zero, with a fee) as made at ``at``; caller commits."""
    rows = [{"f": i["facility_id"], "b": i["band"], "fee": i["recommended_fee"], "at": at}
            for i in items if i["change"] and i["recommended_fee"] is not None]
    if rows:
        await session.execute(text("INSERT INTO management_price_changes (facility_id, band, fee, changed_at) "
                                   "VALUES (:f, :b, :fee, :at)"), rows)
    return len(rows)
