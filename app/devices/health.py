"""Sensor health for readers: ``GET /v1/facilities/{id}`` (a summary) and
``GET /v1/facilities/{id}/sensors`` (one row per sensor)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

LOW_BATTERY_V = 3.2

SUMMARY = text("""
SELECT count(*) AS sensors,
       count(*) FILTER (WHERE s.dev_eui IS NOT NULL) AS lorawan,
       count(*) FILTER (WHERE s.last_seen >= :fresh) AS reporting,
       count(*) FILTER (WHERE s.last_seen IS NULL OR s.last_seen < :fresh) AS silent,
       count(*) FILTER (WHERE s.battery_v < :low) AS low_battery,
       min(s.battery_v) AS battery_v_min,
       round(avg(s.temperature_c)::numeric, 1)::float8 AS temperature_c_mean,
       round(avg(s.rssi_dbm)::numeric, 1)::float8 AS rssi_dbm_mean,
       round(avg(s.snr_db)::numeric, 1)::float8 AS snr_db_mean,
       count(*) FILTER (WHERE s.last_reset_at >= :day_ago) AS reset_last_24h,
       max(s.last_seen) AS last_seen
FROM sensors s JOIN spaces sp ON sp.id = s.space_id
WHERE sp.facility_id = :facility_id
""")

ROWS = text("""
SELECT s.id AS sensor_id, s.space_id, s.kind, s.dev_eui, s.sensor_model, s.last_seen, s.battery_v,
       s.temperature_c, s.rssi_dbm, s.snr_db, s.last_fcnt, s.firmware, s.last_reset_at,
       (SELECT r.cause FROM sensor_resets r WHERE r.sensor_id = s.id
        ORDER BY r.observed_at DESC LIMIT 1) AS last_reset_cause,
       count(*) OVER () AS total
FROM sensors s JOIN spaces sp ON sp.id = s.space_id
WHERE sp.facility_id = :facility_id
ORDER BY s.id LIMIT :limit OFFSET :offset
""")


async def facility_summary(session: AsyncSession, *, facility_id: str, now: datetime,
                           stale_after_s: float) -> dict[str, Any]:
    """Counts and means over the facility's space sensors (``silent``: not heard within the
    staleness window; ``low_battery``: below 3.2 V; ``reset_last_24h``: a reset reported)."""
    row = (await session.execute(SUMMARY, {
        "facility_id": facility_id, "fresh": now - timedelta(seconds=stale_after_s),
        "low": LOW_BATTERY_V, "day_ago": now - timedelta(days=1)})).mappings().one()
    return dict(row)


async def facility_sensors(session: AsyncSession, *, facility_id: str, limit: int,
                           offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of the facility's sensors with their health, and the total."""
    rows = (await session.execute(ROWS, {"facility_id": facility_id, "limit": limit, "offset": offset})).mappings()
    items = [dict(r) for r in rows]
    total = items[0].pop("total") if items else 0
    for item in items[1:]:
        item.pop("total")
    return items, int(total)
