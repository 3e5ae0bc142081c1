"""The one write path for sensor input: MQTT ingest and the operator HTTP pushes.

Two halves:

* **Validation** (pure): ``parse_message(topic, payload)`` splits a topic and decodes the JSON;
  ``validate(message, directory=..., now=...)`` turns it into an :class:`Occupancy`,
  :class:`Count` or :class:`Heartbeat`, or raises :class:`Rejected` with a stable ``reason``
  code (``bad_json``, ``unknown_sensor``, ``wrong_operator``, ``free_above_capacity``,
  ``timestamp_in_future`` …). The :class:`Directory` is the sensor → (operator, space or
  facility) and facility → (operator, capacity) cache that validation reads; the ingest
  worker keeps one and fills it with :meth:`Directory.fetch` for ids it has not seen.
* **Writing**: ``write_batch(conn, events, rejections=...)`` writes a whole batch in the
  caller's transaction with set-based statements: history with ``unnest`` inserts ``ON CONFLICT
  DO NOTHING`` (an event is identified by ``(sensor_id, observed_at, seq)``, so re-deliveries
  are no-ops), one set-based update of ``space_state`` (its rows locked and read first, in key
  order; a newer ``(observed_at, seq)`` wins; ``since`` is the start of the current occupied/free
  spell, recomputed from history when a late event lands inside it), sensor ``last_seen``,
  ``battery_v`` and ``rssi_dbm`` (heartbeats and battery reports), gate counts into
  ``count_events`` + ``facility_counts``, and rejected messages. Rows are locked in key order so
  concurrent workers do not deadlock.

**Notifications.** After the batch's transaction commits, PostgreSQL delivers
``NOTIFY space_state`` with a JSON array of the space ids whose ``occupied`` value changed in that
batch (``["zqgc-lot-001", "s51-04-003"]``). A batch normally sends one notification; a very
large change set is split into several arrays of under 7,500 bytes each. Listeners re-read
``space_state`` for those ids (the payload carries no state, so a late listener is never wrong).

**Staleness is computed by readers, not stored.** A space's status is ``unknown`` when its
``space_state.occupied`` is NULL or its ``last_seen`` (any message from its sensor, occupancy
or heartbeat) is older than ``settings.stale_after_s``; never ``free``. Use
:func:`space_status` in Python or :func:`status_sql` in queries so every reader agrees.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Forbidden, InvalidInput, NotFound
from app.services import occupancy_sql as sql
from app.settings import Settings

MAX_PAYLOAD_BYTES = 4096
STORED_PAYLOAD_CHARS = 2000
EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
NOTIFY_CHANNEL = "space_state"
NOTIFY_MAX_BYTES = 7500
MESSAGE_KINDS = {"sensors": ("occupancy", "heartbeat"), "facilities": ("count",)}


class Rejected(InvalidInput):
    """A message that cannot be accepted; ``reason`` is a stable code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason, kind="invalid_input")
        self.reason = reason

    @property
    def stored_reason(self) -> str:
        """What ``rejected_messages.reason`` holds: ``code`` or ``code: detail``."""
        return self.reason if self.detail == self.reason else f"{self.reason}: {self.detail}"

    def as_domain_error(self) -> InvalidInput | NotFound | Forbidden:
        """The error the HTTP push endpoints raise: 404 unknown, 403 another operator's, else 422."""
        if self.reason in ("unknown_sensor", "unknown_facility"):
            return NotFound(self.detail, kind=self.reason)
        if self.reason == "wrong_operator":
            return Forbidden(self.detail)
        return InvalidInput(self.detail, kind=self.reason)


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: who it is about (from the topic) and its JSON object."""

    operator_id: str
    target: Literal["sensors", "facilities"]
    target_id: str
    kind: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Occupancy:
    sensor_id: str
    space_id: str
    occupied: bool
    observed_at: datetime
    seq: int | None = None
    battery_v: float | None = None
    source: str = "mqtt"


@dataclass(frozen=True, slots=True)
class Count:
    facility_id: str
    free: int
    observed_at: datetime
    total: int | None = None
    source: str = "mqtt"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sensor_id: str
    space_id: str | None
    observed_at: datetime
    battery_v: float | None = None
    rssi_dbm: float | None = None
    source: str = "mqtt"


Event = Occupancy | Count | Heartbeat


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected message as stored in ``rejected_messages``."""

    topic: str
    payload: bytes | str
    reason: str
    source: str = "mqtt"


@dataclass(frozen=True, slots=True)
class SensorInfo:
    operator_id: str
    space_id: str | None
    facility_id: str | None


@dataclass(frozen=True, slots=True)
class FacilityInfo:
    operator_id: str
    capacity: int
    counted: bool


@dataclass
class Directory:
    """Cache of sensors and facilities that validation checks messages against.

    Entries expire after ``max_age_s`` (so moved or deleted sensors are noticed) and ids found
    missing are remembered for ``negative_ttl_s`` (so a flood of unknown ids costs one query a
    batch, not one per message).
    """

    max_age_s: float = 300.0
    negative_ttl_s: float = 30.0
    sensors: dict[str, SensorInfo] = field(default_factory=dict)
    facilities: dict[str, FacilityInfo] = field(default_factory=dict)
    _missing: dict[tuple[str, str], float] = field(default_factory=dict)
    _loaded_at: float = field(default_factory=time.monotonic)

    def wanted(self, messages: Iterable[Message]) -> tuple[list[str], list[str]]:
        """Sensor and facility ids of ``messages`` that are neither cached nor known missing."""
        self._expire()
        now = time.monotonic()
        sensors: set[str] = set()
        facilities: set[str] = set()
        for m in messages:
            cache, out = (self.sensors, sensors) if m.target == "sensors" else (self.facilities, facilities)
            if m.target_id not in cache and self._missing.get((m.target, m.target_id), 0) < now:
                out.add(m.target_id)
        return sorted(sensors), sorted(facilities)

    async def fetch(self, conn: asyncpg.Connection, *, sensor_ids: Sequence[str] = (),
                    facility_ids: Sequence[str] = ()) -> None:
        """Load the given ids from the database; ids not found are remembered as missing."""
        until = time.monotonic() + self.negative_ttl_s
        if sensor_ids:
            rows = await conn.fetch(
                "SELECT id, operator_id, space_id, facility_id FROM sensors WHERE id = ANY($1::text[])",
                list(sensor_ids))
            self.sensors.update({r["id"]: SensorInfo(r["operator_id"], r["space_id"], r["facility_id"]) for r in rows})
            self._missing.update({("sensors", s): until for s in sensor_ids if s not in self.sensors})
        if facility_ids:
            rows = await conn.fetch(
                "SELECT id, operator_id, capacity, counted FROM facilities WHERE id = ANY($1::text[])",
                list(facility_ids))
            self.facilities.update({r["id"]: FacilityInfo(r["operator_id"], r["capacity"], r["counted"]) for r in rows})
            self._missing.update({("facilities", f): until for f in facility_ids if f not in self.facilities})

    def _expire(self) -> None:
        if time.monotonic() - self._loaded_at > self.max_age_s:
            self.sensors.clear()
            self.facilities.clear()
            self._missing.clear()
            self._loaded_at = time.monotonic()


# --- validation ---------------------------------------------------------------------------


def parse_message(topic: str, payload: bytes, *, root: str,
                  max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Message:
    """Split ``{root}/{operator}/{sensors|facilities}/{id}/{kind}`` and decode the JSON object."""
    if len(payload) > max_payload_bytes:
        raise Rejected("payload_too_large", f"{len(payload)} bytes, at most {max_payload_bytes}")
    parts = topic.split("/")
    root_parts = root.split("/")
    rest = parts[len(root_parts):]
    if parts[: len(root_parts)] != root_parts or len(rest) != 4 or not all(rest):
        raise Rejected("bad_topic", f"expected {root}/<operator>/<sensors|facilities>/<id>/<kind>")
    operator_id, target, target_id, kind = rest
    if kind not in MESSAGE_KINDS.get(target, ()):
        raise Rejected("bad_topic", f"no {kind!r} messages for {target!r}")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected("bad_json", str(exc)[:200]) from None
    if not isinstance(body, dict):
        raise Rejected("bad_json", "the payload must be a JSON object")
    return Message(operator_id, target, target_id, kind, body)  # type: ignore[arg-type]


def validate(message: Message, *, directory: Directory, now: datetime, max_clock_skew_s: float,
             source: str = "mqtt") -> Event:
    """The event a decoded message stands for, or :class:`Rejected` (CONTRACT.md's rules)."""
    if message.target == "facilities":
        return _count(message, directory, now, max_clock_skew_s, source)
    sensor = directory.sensors.get(message.target_id)
    if sensor is None:
        raise Rejected("unknown_sensor", f"no sensor {message.target_id!r}")
    if sensor.operator_id != message.operator_id:
        raise Rejected("wrong_operator", f"sensor {message.target_id!r} belongs to another operator")
    body = message.body
    observed_at = _timestamp(body, now, max_clock_skew_s)
    battery_v = _number(body, "battery_v", -1.0, 100.0)
    if message.kind == "heartbeat":
        return Heartbeat(message.target_id, sensor.space_id, observed_at, battery_v,
                         _number(body, "rssi_dbm", -200.0, 50.0), source)
    if sensor.space_id is None:
        raise Rejected("not_a_space_sensor", f"sensor {message.target_id!r} is not on a space")
    occupied = body.get("occupied")
    if not isinstance(occupied, bool):
        raise Rejected("invalid_field", "occupied must be true or false")
    return Occupancy(message.target_id, sensor.space_id, occupied, observed_at,
                     _integer(body, "seq", 0, 2**63 - 1), battery_v, source)


def validate_message(topic: str, payload: bytes, *, directory: Directory, settings: Settings,
                     now: datetime | None = None, source: str = "mqtt") -> Event:
    """``parse_message`` then ``validate`` with the settings' topic root and clock skew."""
    message = parse_message(topic, payload, root=settings.mqtt_topic_root)
    return validate(message, directory=directory, now=now or datetime.now(UTC),
                    max_clock_skew_s=settings.max_clock_skew_s, source=source)


def _count(message: Message, directory: Directory, now: datetime, skew: float, source: str) -> Count:
    facility = directory.facilities.get(message.target_id)
    if facility is None:
        raise Rejected("unknown_facility", f"no facility {message.target_id!r}")
    if facility.operator_id != message.operator_id:
        raise Rejected("wrong_operator", f"facility {message.target_id!r} belongs to another operator")
    if not facility.counted:
        raise Rejected("not_counted", f"facility {message.target_id!r} does not count at the gate")
    observed_at = _timestamp(message.body, now, skew)
    free = _integer(message.body, "free", None, None, required=True)
    assert free is not None
    if free < 0:
        raise Rejected("free_negative", f"free is {free}")
    if free > facility.capacity:
        raise Rejected("free_above_capacity", f"free {free} > capacity {facility.capacity}")
    total = _integer(message.body, "total", 0, 1_000_000)
    if total is not None and free > total:
        raise Rejected("free_above_total", f"free {free} > total {total}")
    return Count(message.target_id, free, observed_at, total, source)


def _timestamp(body: Mapping[str, Any], now: datetime, skew: float) -> datetime:
    raw = body.get("observed_at")
    if not isinstance(raw, str) or len(raw) > 40:
        raise Rejected("invalid_field", "observed_at must be an RFC 3339 timestamp")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Rejected("bad_timestamp", f"observed_at {raw!r} is not RFC 3339") from None
    if value.tzinfo is None:
        raise Rejected("bad_timestamp", "observed_at needs a UTC offset")
    if value > now + timedelta(seconds=skew):
        raise Rejected("timestamp_in_future", f"observed_at {raw} is ahead of the server clock")
    if value < EPOCH_FLOOR:
        raise Rejected("timestamp_before_2000", f"observed_at {raw} is before 2000")
    return value.astimezone(UTC)


def _integer(body: Mapping[str, Any], name: str, lo: int | None, hi: int | None,
             *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise Rejected("invalid_field", f"{name} must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise Rejected("invalid_field", f"{name} {value} is out of range")
    return value


def _number(body: Mapping[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise Rejected("invalid_field", f"{name} must be a number")
    if not lo <= value <= hi:
        raise Rejected("invalid_field", f"{name} {value} is out of range")
    return float(value)


# --- staleness ----------------------------------------------------------------------------


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


# --- writing ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch changed: new history rows, new counts, rejections, spaces whose state flipped."""

    history_inserted: int
    counts_inserted: int
    rejected: int
    changed_spaces: list[str]


async def write_batch(conn: asyncpg.Connection, events: Sequence[Event], *,
                      rejections: Sequence[Rejection] = (), notify: bool = True) -> BatchResult:
    """Write a batch (history, state, sensors, counts, rejections) in the caller's transaction.

    Idempotent: writing the same events again changes nothing. The caller commits; on a
    deadlock or serialization failure (``asyncpg.exceptions.DeadlockDetectedError``) the caller
    rolls back and retries the whole batch. ``NOTIFY space_state`` is sent when ``notify``.
    """
    occ = _dedupe([e for e in events if isinstance(e, Occupancy)],
                  lambda e: (e.sensor_id, e.observed_at, e.seq))
    counts = _dedupe([e for e in events if isinstance(e, Count)], lambda e: (e.facility_id, e.observed_at))
    beats = [e for e in events if isinstance(e, Heartbeat)]
    inserted = await sql.insert_history(conn, occ)
    changed = await sql.upsert_space_state(conn, occ, beats)
    # Sensor rows move on heartbeats and battery reports; every occupancy message already
    # moves space_state.last_seen, which is what staleness reads.
    await sql.update_sensors(conn, [*[e for e in occ if e.battery_v is not None], *beats])
    n_counts = await sql.write_counts(conn, counts)
    await sql.insert_rejections(conn, [_stored(r) for r in rejections])
    if notify and changed:
        await conn.execute("SELECT pg_notify($1, c) FROM unnest($2::text[]) AS c",
                           NOTIFY_CHANNEL, _notify_chunks(changed))
    return BatchResult(inserted, n_counts, len(rejections), changed)


def _dedupe(items: list[Any], key: Any) -> list[Any]:
    seen: dict[Any, Any] = {}
    for item in items:
        seen.setdefault(key(item), item)
    return list(seen.values())


def _stored(r: Rejection) -> tuple[str, str, str, str]:
    """Topic, payload (truncated, NUL-free text), reason, source."""
    raw = r.payload.decode("utf-8", "replace") if isinstance(r.payload, bytes) else r.payload
    return (_clean(r.topic, 500), _clean(raw, STORED_PAYLOAD_CHARS), _clean(r.reason, 500), r.source)


def _clean(text: str, limit: int) -> str:
    return text[:limit].replace("\x00", "\\u0000")


def _notify_chunks(space_ids: list[str]) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 2
    for sid in space_ids:
        item = len(json.dumps(sid).encode()) + 1
        if current and size + item > NOTIFY_MAX_BYTES:
            chunks.append(json.dumps(current, separators=(",", ":")))
            current, size = [], 2
        current.append(sid)
        size += item
    return [*chunks, json.dumps(current, separators=(",", ":"))] if current else chunks


# --- the HTTP push endpoints --------------------------------------------------------------


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def push(session: AsyncSession, *, settings: Settings, operator_id: str,
               target: Literal["sensors", "facilities"], target_id: str, kind: str,
               body: Any) -> Event:
    """Validate and write one pushed message (the operator HTTP endpoints; the caller commits).

    ``body`` is the parsed JSON (or raw bytes). Raises ``NotFound`` (unknown sensor or facility),
    ``Forbidden`` (another operator's) or ``InvalidInput`` (kind = the reason code) when the
    message is rejected; :func:`record_rejection` stores such a rejection if wanted.
    """
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    topic = "/".join((settings.mqtt_topic_root, operator_id, target, target_id, kind))
    conn = await driver_connection(session)
    try:
        message = parse_message(topic, payload, root=settings.mqtt_topic_root)
        directory = Directory()
        await directory.fetch(conn, **{"sensor_ids" if target == "sensors" else "facility_ids": [target_id]})
        event = validate(message, directory=directory, now=datetime.now(UTC),
                         max_clock_skew_s=settings.max_clock_skew_s, source="http")
    except Rejected as rej:
        raise rej.as_domain_error() from None
    await write_batch(conn, [event])
    return event


async def push_occupancy(session: AsyncSession, *, settings: Settings, operator_id: str,
                         sensor_id: str, body: Any) -> Event:
    """``POST /v1/operators/{op}/sensors/{id}/occupancy``: see :func:`push`."""
    return await push(session, settings=settings, operator_id=operator_id, target="sensors",
                      target_id=sensor_id, kind="occupancy", body=body)


async def push_count(session: AsyncSession, *, settings: Settings, operator_id: str,
                     facility_id: str, body: Any) -> Event:
    """``POST /v1/operators/{op}/facilities/{id}/count``: see :func:`push`."""
    return await push(session, settings=settings, operator_id=operator_id, target="facilities",
                      target_id=facility_id, kind="count", body=body)


async def record_rejection(session: AsyncSession, rejection: Rejection) -> None:
    """Store one rejection (e.g. of an HTTP push) in the session's transaction."""
    await sql.insert_rejections(await driver_connection(session), [_stored(rejection)])
