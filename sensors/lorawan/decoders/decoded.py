"""Devices whose network server already decodes (a payload formatter on ChirpStack or TTS).

The occupancy is taken from the decoded object (ChirpStack ``object``, TTS
``decoded_payload``), or from its ``data`` member when the formatter nests it, by the first of
these fields present:

- ``occupied``, ``isOccupied``, ``carStatus``, ``car_status``, ``CarOnOff``, ``carPresent``,
  ``car_present``, ``presence``: true/false or 1/0;
- ``occupancy``, ``status``, ``parkingStatus``, ``parking_status``: true/false, 1/0, or the
  strings ``occupied``/``busy``/``taken`` vs ``free``/``vacant``/``empty``/``available``.

Optional: ``battery_v``/``batteryVoltage``/``battery`` (volts, 0–10), ``temperature``/
``temperature_c`` (°C), and ``type`` = ``heartbeat`` or ``startup`` (otherwise a status).
The frame bytes and port are not read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sensors.lorawan.decoders.base import FrameError, Kind, Reading

BOOLEAN_FIELDS = ("occupied", "isOccupied", "carStatus", "car_status", "CarOnOff", "carPresent",
                  "car_present", "presence")
WORD_FIELDS = ("occupancy", "status", "parkingStatus", "parking_status")
OCCUPIED_WORDS = {"occupied", "busy", "taken", "1", "true"}
FREE_WORDS = {"free", "vacant", "empty", "available", "0", "false"}
KINDS: dict[str, Kind] = {"heartbeat": "heartbeat", "startup": "startup", "start-up": "startup"}


def decode(_f_port: int, _frame: bytes, decoded: Mapping[str, Any] | None = None) -> Reading:
    if not isinstance(decoded, Mapping) or not decoded:
        raise FrameError("no_occupancy", "the network server sent no decoded payload for a 'decoded' device")
    nested = decoded.get("data")
    body: Mapping[str, Any] = nested if isinstance(nested, Mapping) else decoded
    occupied = _occupied(body)
    kind: Kind = KINDS.get(str(body.get("type", "")).lower(), "status")
    battery = _number(body, ("battery_v", "batteryVoltage", "battery"), 0.0, 10.0)
    temperature = _number(body, ("temperature_c", "temperature"), -60.0, 100.0)
    return Reading(kind, occupied=occupied, battery_v=battery, temperature_c=temperature)


def _occupied(body: Mapping[str, Any]) -> bool:
    for name in BOOLEAN_FIELDS + WORD_FIELDS:
        if name not in body:
            continue
        value = body[name]
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and name in WORD_FIELDS:
            word = value.strip().lower()
            if word in OCCUPIED_WORDS or word in FREE_WORDS:
                return word in OCCUPIED_WORDS
        raise FrameError("bad_frame", f"decoded field {name!r} is {str(value)[:40]!r}, not an occupancy")
    raise FrameError("no_occupancy", f"the decoded payload has none of {', '.join(BOOLEAN_FIELDS + WORD_FIELDS)}")


def _number(body: Mapping[str, Any], names: tuple[str, ...], lo: float, hi: float) -> float | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
                and lo <= value <= hi:
            return float(value)
    return None
