"""The uplink sensor-row throttle (app.devices.service.ReportThrottle) against the real database.

A sensor's row is written at most once per interval of report time, at once on a reset, and
held-back readings are never lost: they go with the row's next write or a flush.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.devices.service import DeviceReport, ReportThrottle, write_reports
from app.occupancy import service as occ

SENSOR = "bay-000001"
T = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def report(seconds: float, fcnt: int, kind: str = "status", **readings: Any) -> DeviceReport:
    return DeviceReport(SENSOR, T + timedelta(seconds=seconds), fcnt, kind, **readings)


async def blank(db: AsyncSession) -> asyncpg.Connection:
    """The test's connection, with the sensor's row as a new device's (rolled back afterwards)."""
    conn = await occ.driver_connection(db)
    await conn.execute("UPDATE sensors SET last_seen = NULL, last_fcnt = NULL, battery_v = NULL, rssi_dbm = NULL, "
                       "temperature_c = NULL WHERE id = $1", SENSOR)
    return conn


async def row(conn: asyncpg.Connection) -> tuple[Any, ...]:
    r = await conn.fetchrow("SELECT last_seen, last_fcnt, battery_v, rssi_dbm, temperature_c FROM sensors "
                            "WHERE id = $1", SENSOR)
    return tuple(r)


async def resets(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch(
        "SELECT observed_at, cause, fcnt FROM sensor_resets WHERE sensor_id = $1 ORDER BY observed_at", SENSOR)]


async def test_a_row_is_written_once_per_interval_and_keeps_held_back_readings(db: AsyncSession) -> None:
    conn = await blank(db)
    throttle = ReportThrottle(30)

    async def write(*reports: DeviceReport) -> None:
        await write_reports(conn, list(reports), throttle=throttle)
        throttle.committed()

    await write(report(0, 10, rssi_dbm=-90.0))
    assert await row(conn) == (T, 10, None, -90.0, None)  # first report of a sensor: written
    await write(report(10, 11, battery_v=3.3, rssi_dbm=-95.0))
    await write(report(20, 12, "heartbeat", temperature_c=4.0))
    assert await row(conn) == (T, 10, None, -90.0, None)  # within the interval: held back
    await write(report(31, 13, rssi_dbm=-99.0))  # the interval is over: written, with what was held back
    assert await row(conn) == (T + timedelta(seconds=31), 13, 3.3, -99.0, 4.0)
    assert await resets(conn) == []


async def test_resets_are_written_at_once(db: AsyncSession) -> None:
    conn = await blank(db)
    throttle = ReportThrottle(30)
    startup = report(9, 0, "startup", reset_cause="power_on")
    for reports in ([report(0, 40)], [report(5, 41)], [report(8, 0)], [startup]):
        await write_reports(conn, reports, throttle=throttle)
        throttle.committed()
    assert await resets(conn) == [(T + timedelta(seconds=8), "fcnt_reset", 0),
                                  (T + timedelta(seconds=9), "power_on", 0)]
    assert (await row(conn))[:2] == (T + timedelta(seconds=9), 0)


async def test_nothing_is_remembered_until_the_batch_commits(db: AsyncSession) -> None:
    conn = await blank(db)
    throttle = ReportThrottle(30)
    await write_reports(conn, [report(0, 1)], throttle=throttle)  # rolled back: committed() is not called
    await conn.execute("UPDATE sensors SET last_seen = NULL, last_fcnt = NULL WHERE id = $1", SENSOR)
    await write_reports(conn, [report(5, 2)], throttle=throttle)  # so the retry writes the row again
    throttle.committed()
    assert (await row(conn))[:2] == (T + timedelta(seconds=5), 2)


def test_held_back_reports_are_flushed_after_the_interval_of_wall_time() -> None:
    throttle = ReportThrottle(30)
    assert list(throttle.due({SENSOR: [report(0, 1)]}, now=100.0)) == [SENSOR]
    throttle.committed()
    assert throttle.due({SENSOR: [report(5, 2, battery_v=3.0)]}, now=101.0) == {}
    throttle.committed()
    assert throttle.due({"other": [report(6, 1)]}, now=120.0).keys() == {"other"}  # 19 s: still held
    throttle.committed()
    flushed = throttle.due({"another": [report(7, 1)]}, now=131.5)  # 30.5 s after it was held back
    assert flushed.keys() == {"another", SENSOR}
    assert [(r.fcnt, r.battery_v) for r in flushed[SENSOR]] == [(2, 3.0)]
    throttle.committed()
    assert throttle.due({}, now=500.0) == {}  # flushed once, not again
