"""LoRaWAN devices: finding a sensor by DevEUI, writing what its frames report besides
occupancy (radio, battery, temperature, frame counter, resets), and sensor health for readers.

``write_reports(conn, reports)`` runs in the ingest batch's transaction, after
``app.occupancy.service.write_batch``. Sensor rows are locked in key order (as occupancy's
statements do), then each sensor moves to its newest report: ``last_seen``, battery,
temperature, RSSI, SNR and ``last_fcnt`` only ever move forward in time. A frame counter that
drops on a newer frame is a counter reset (the device rejoined): it is recorded in
``sensor_resets`` with cause ``fcnt_reset`` (unless the device's own start-up frame already
recorded that reset). Occupancy events keep the raw frame counter as ``seq``: their identity
``(sensor_id, observed_at, seq)`` and their order (``observed_at`` first, ``seq`` only breaks
ties) stay right across resets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

LOCK_SENSORS = """
SELECT id, last_fcnt, last_seen FROM sensors WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE
"""

UPDATE_SENSORS = """
UPDATE sensors s SET
    last_seen = GREATEST(s.last_seen, v.seen),
    battery_v = CASE WHEN v.battery_v IS NOT NULL AND (s.last_seen IS NULL OR v.seen >= s.last_seen)
                     THEN v.battery_v ELSE s.battery_v END,
    rssi_dbm = CASE WHEN v.rssi_dbm IS NOT NULL AND (s.last_seen IS NULL OR v.seen >= s.last_seen)
                    THEN v.rssi_dbm ELSE s.rssi_dbm END,
    snr_db = CASE WHEN v.snr_db IS NOT NULL AND (s.last_seen IS NULL OR v.seen >= s.last_seen)
                  THEN v.snr_db ELSE s.snr_db END,
    temperature_c = CASE WHEN v.temperature_c IS NOT NULL AND (s.last_seen IS NULL OR v.seen >= s.last_seen)
                         THEN v.temperature_c ELSE s.temperature_c END,
    last_fcnt = CASE WHEN s.last_seen IS NULL OR v.seen >= s.last_seen THEN v.fcnt ELSE s.last_fcnt END,
    firmware = COALESCE(v.firmware, s.firmware),
    last_reset_at = GREATEST(s.last_reset_at, v.reset_at)
FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
            $7::int8[], $8::text[], $9::timestamptz[])
    AS v(id, seen, battery_v, rssi_dbm, snr_db, temperature_c, fcnt, firmware, reset_at)
WHERE s.id = v.id
"""

INSERT_RESETS = """
INSERT INTO sensor_resets (sensor_id, observed_at, cause, firmware, fcnt, source)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::int8[], $6::text[])
ON CONFLICT DO NOTHING
"""

RECENT_SEQS = """
SELECT sensor_id, seq FROM occupancy_events
WHERE sensor_id = ANY($1::text[]) AND observed_at >= $2 AND seq IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class Device:
    sensor_id: str
    operator_id: str
    space_id: str | None
    model: str


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What one uplink says about its sensor, besides occupancy."""

    sensor_id: str
    observed_at: datetime
    fcnt: int
    kind: str  # the decoder's: status, heartbeat, startup, info
    rssi_dbm: float | None = None
    snr_db: float | None = None
    battery_v: float | None = None
    temperature_c: float | None = None
    firmware: str | None = None
    reset_cause: str | None = None
    source: str = "mqtt"


@dataclass
class DeviceDirectory:
    """DevEUI → :class:`Device` cache with the same expiry rules as ``occupancy.messages.Directory``."""

    max_age_s: float = 300.0
    negative_ttl_s: float = 30.0
    devices: dict[str, Device] = field(default_factory=dict)
    _missing: dict[str, float] = field(default_factory=dict)
    _loaded_at: float = field(default_factory=time.monotonic)

    def wanted(self, dev_euis: Iterable[str]) -> list[str]:
        if time.monotonic() - self._loaded_at > self.max_age_s:
            self.devices.clear()
            self._missing.clear()
            self._loaded_at = time.monotonic()
        now = time.monotonic()
        return sorted({e for e in dev_euis if e not in self.devices and self._missing.get(e, 0) < now})

    async def fetch(self, conn: asyncpg.Connection, dev_euis: Sequence[str]) -> None:
        if not dev_euis:
            return
        rows = await conn.fetch(
            "SELECT id, operator_id, space_id, dev_eui, sensor_model FROM sensors WHERE dev_eui = ANY($1::text[])",
            list(dev_euis))
        self.devices.update({r["dev_eui"]: Device(r["id"], r["operator_id"], r["space_id"], r["sensor_model"])
                             for r in rows})
        until = time.monotonic() + self.negative_ttl_s
        self._missing.update({e: until for e in dev_euis if e not in self.devices})


async def write_reports(conn: asyncpg.Connection, reports: Sequence[DeviceReport]) -> int:
    """Move each reporting sensor to its newest report and record resets; returns resets recorded."""
    if not reports:
        return 0
    by_sensor: dict[str, list[DeviceReport]] = {}
    for r in sorted(reports, key=lambda r: (r.observed_at, r.fcnt)):
        by_sensor.setdefault(r.sensor_id, []).append(r)
    ids = sorted(by_sensor)
    stored = {row["id"]: row for row in await conn.fetch(LOCK_SENSORS, ids)}
    resets = [reset for sid in ids if sid in stored
              for reset in _resets(by_sensor[sid], stored[sid]["last_fcnt"], stored[sid]["last_seen"])]
    rows = [_newest(by_sensor[sid], [r for r in resets if r[0] == sid]) for sid in ids if sid in stored]
    if rows:
        await conn.execute(UPDATE_SENSORS, *[list(c) for c in zip(*rows, strict=True)])
    if resets:
        await conn.execute(INSERT_RESETS, *[list(c) for c in zip(*resets, strict=True)])
    return len(resets)


def _resets(reports: list[DeviceReport], last_fcnt: int | None,
            last_seen: datetime | None) -> list[tuple[Any, ...]]:
    """Start-up frames, and newer frames whose counter went down (in time order)."""
    out: list[tuple[Any, ...]] = []
    prev_fcnt, prev_at = last_fcnt, last_seen
    for r in reports:
        if r.kind == "startup":
            out.append((r.sensor_id, r.observed_at, r.reset_cause or "startup", r.firmware, r.fcnt, r.source))
        elif prev_fcnt is not None and prev_at is not None and r.observed_at > prev_at and r.fcnt < prev_fcnt:
            out.append((r.sensor_id, r.observed_at, "fcnt_reset", None, r.fcnt, r.source))
        if prev_at is None or r.observed_at >= prev_at:
            prev_fcnt, prev_at = r.fcnt, r.observed_at
    return out


def _newest(reports: list[DeviceReport], resets: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One sensor's update row: newest time and counter; each reading from the newest that has it."""
    newest = reports[-1]

    def last(name: str) -> Any:
        return next((getattr(r, name) for r in reversed(reports) if getattr(r, name) is not None), None)

    reset_at = max((r[1] for r in resets), default=None)
    return (newest.sensor_id, newest.observed_at, last("battery_v"), last("rssi_dbm"), last("snr_db"),
            last("temperature_c"), newest.fcnt, last("firmware"), reset_at)


async def recent_seqs(conn: asyncpg.Connection, sensor_ids: Sequence[str], since: datetime) -> set[tuple[str, int]]:
    """``(sensor_id, seq)`` of the history since ``since``: spots re-deliveries of uplinks that
    carried no time of their own (they are timed by their arrival, so each copy looks new)."""
    if not sensor_ids:
        return set()
    rows = await conn.fetch(RECENT_SEQS, sorted(set(sensor_ids)), since)
    return {(r["sensor_id"], r["seq"]) for r in rows}
