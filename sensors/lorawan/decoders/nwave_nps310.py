"""Nwave NPS310 parking sensor, from Nwave's LoRaWAN payload description.

- fPort 1, status, and fPort 2, heartbeat: byte 0 bit 0 = occupied.
- fPort 3, start-up: bytes 0–2 firmware version, byte 3 reset cause (1 watchdog, 2 power on,
  3 user request, 4 brown-out, 5 other), byte 4 bit 0 = occupied.
- fPort 6, debug: alive, nothing about the space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensors.lorawan.decoders.base import Reading, need, unknown_port

MODEL = "nwave-nps310"
RESET_CAUSES = {1: "watchdog", 2: "power_on", 3: "user_request", 4: "brownout", 5: "other"}


def decode(f_port: int, frame: bytes, _decoded: Mapping[str, Any] | None = None) -> Reading:
    if f_port in (1, 2):
        need(frame, 1, "a status frame" if f_port == 1 else "a heartbeat")
        return Reading("status" if f_port == 1 else "heartbeat", occupied=bool(frame[0] & 1))
    if f_port == 3:
        need(frame, 5, "a start-up frame")
        return Reading("startup", occupied=bool(frame[4] & 1), firmware=f"{frame[0]}.{frame[1]}.{frame[2]}",
                       reset_cause=RESET_CAUSES.get(frame[3], f"code_{frame[3]}"))
    if f_port == 6:
        return Reading("info")
    raise unknown_port(MODEL, f_port, "1 status, 2 heartbeat, 3 start-up, 6 debug")
