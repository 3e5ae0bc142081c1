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
from datetime import datetime, timedelta
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


@dataclass(slots=True)
class _Known:
    """What this process knows of one sensor's row and of the reports it has not written yet."""

    written: datetime | None = None  # the newest report time written to the row
    fcnt: int | None = None  # the newest report processed: its counter and time (reset detection)
    seen: datetime | None = None
    pending: list[DeviceReport] = field(default_factory=list)  # processed, not written yet
    pending_since: float = 0.0  # monotonic time of the oldest pending report


@dataclass
class ReportThrottle:
    """Writes a sensor's row at most once per ``interval_s`` (of report time) per process.

    An uplink's row update (last_seen, radio, battery, temperature, counter) is the per-frame
    cost of the LoRaWAN path that JSON ingest does not have: one locked, updated ``sensors`` row
    per frame. With a throttle a sensor's row is written when its newest report is at least
    ``interval_s`` newer than what the row holds, on any reset (start-up frame, counter drop),
    for a sensor this process has not written yet, and for reports held back longer than
    ``interval_s`` of wall time (flushed with the next batch). Held-back reports are written
    with the next write of the row, so no reading is lost: the row is at most ``interval_s``
    behind while ingest runs. The state moves only after the batch's commit (:meth:`committed`).
    """

    interval_s: float
    known: dict[str, _Known] = field(default_factory=dict)
    _held: dict[str, None] = field(default_factory=dict)  # sensors with pending reports
    _plan: dict[str, _Known] | None = None

    def due(self, by_sensor: dict[str, list[DeviceReport]], now: float) -> dict[str, list[DeviceReport]]:
        """The sensors to write now, each with its pending and new reports (time order); plans
        what :meth:`committed` records."""
        plan: dict[str, _Known] = {}
        out: dict[str, list[DeviceReport]] = {}
        for sid, reps in by_sensor.items():
            k = self.known.get(sid)
            newest = reps[-1]
            if (k is None or k.written is None or any(r.kind == "startup" for r in reps)
                    or _resets(reps, k.fcnt, k.seen)
                    or newest.observed_at >= k.written + timedelta(seconds=self.interval_s)):
                out[sid] = sorted([*(k.pending if k else []), *reps], key=_order)
                plan[sid] = _written(k, out[sid])
                continue
            fcnt, seen = (newest.fcnt, newest.observed_at)
            if k.seen is not None and k.fcnt is not None and (k.seen, k.fcnt) > (seen, fcnt):
                fcnt, seen = k.fcnt, k.seen
            plan[sid] = _Known(k.written, fcnt, seen, _compress([*k.pending, *reps]),
                               k.pending_since if k.pending else now)
        for sid in list(self._held):  # held back too long: flushed with this batch
            k = self.known[sid]
            if sid not in by_sensor and now - k.pending_since >= self.interval_s:
                out[sid] = sorted(k.pending, key=_order)
                plan[sid] = _written(k, out[sid])
        self._plan = plan
        return out

    def committed(self) -> None:
        """The batch whose reports :meth:`due` planned is committed: remember what was written."""
        for sid, k in (self._plan or {}).items():
            self.known[sid] = k
            if k.pending:
                self._held[sid] = None
            else:
                self._held.pop(sid, None)
        self._plan = None


def _written(k: _Known | None, reports: list[DeviceReport]) -> _Known:
    newest = reports[-1]
    at = newest.observed_at if k is None or k.written is None else max(k.written, newest.observed_at)
    if k is not None and k.seen is not None and k.fcnt is not None and (k.seen, k.fcnt) > _order(newest):
        return _Known(at, k.fcnt, k.seen)
    return _Known(at, newest.fcnt, newest.observed_at)


def _order(r: DeviceReport) -> tuple[datetime, int]:
    return (r.observed_at, r.fcnt)


READINGS = ("battery_v", "rssi_dbm", "snr_db", "temperature_c", "firmware")


def _compress(reports: list[DeviceReport]) -> list[DeviceReport]:
    """The reports a row update needs: the newest, and the newest carrying each reading."""
    ordered = sorted(reports, key=_order)
    keep = {id(ordered[-1])}
    for name in READINGS:
        last = next((r for r in reversed(ordered) if getattr(r, name) is not None), None)
        if last is not None:
            keep.add(id(last))
    return [r for r in ordered if id(r) in keep]


async def write_reports(conn: asyncpg.Connection, reports: Sequence[DeviceReport], *,
                        throttle: ReportThrottle | None = None) -> int:
    """Move each reporting sensor to its newest report and record resets; returns resets recorded.

    With ``throttle``, only the sensors it says are due are written (see :class:`ReportThrottle`);
    the caller calls ``throttle.committed()`` after the transaction commits.
    """
    by_sensor: dict[str, list[DeviceReport]] = {}
    for r in sorted(reports, key=_order):
        by_sensor.setdefault(r.sensor_id, []).append(r)
    if throttle is not None:
        by_sensor = throttle.due(by_sensor, time.monotonic())
    if not by_sensor:
        return 0
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
