"""Sensor and gate-counter messages: decoding and validation (pure), shared by MQTT and HTTP.

``parse_message(topic, payload)`` splits a topic and decodes the JSON; ``validate(message,
directory=..., now=...)`` turns it into an :class:`Occupancy`, :class:`Count` or
:class:`Heartbeat`, or raises :class:`Rejected` with a stable ``reason`` code (``bad_json``,
``unknown_sensor``, ``wrong_operator``, ``free_above_capacity``, ``timestamp_in_future`` …).
The :class:`Directory` is the sensor → (operator, space or facility) and facility → (operator,
capacity) cache that validation reads; the ingest worker keeps one and fills it with
:meth:`Directory.fetch` for ids it has not seen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import orjson

from app.core.errors import Forbidden, InvalidInput, NotFound

MAX_PAYLOAD_BYTES = 4096
EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
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
    return parse_observed_at(body.get("observed_at"), now, skew)


def parse_observed_at(raw: Any, now: datetime, skew: float) -> datetime:
    """``observed_at`` as UTC: RFC 3339 with an offset, not ahead of ``now`` by more than ``skew``
    seconds, not before 2000; else :class:`Rejected` (the rule every input path keeps)."""
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
