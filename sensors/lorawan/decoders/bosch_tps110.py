"""Bosch Parking Lot Sensor (TPS110), from Bosch's LoRaWAN interface description.

- fPort 1, status: byte 0 bit 0 = occupied.
- fPort 2, heartbeat: byte 0 bit 0 = occupied; byte 1 (newer firmware) = temperature, °C, int8.
- fPort 3, start-up (17 bytes): bytes 0–11 debug codes, 12–14 firmware version
  (major.minor.patch), 15 reset cause (1 watchdog, 2 power on, 3 system request, 4 other),
  16 bit 0 = occupied.
- fPorts 4–6 (device information, usage, debug): alive, nothing about the space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensors.lorawan.decoders.base import FrameError, Reading, need, unknown_port

MODEL = "bosch-tps110"
RESET_CAUSES = {1: "watchdog", 2: "power_on", 3: "system_request", 4: "other"}


def decode(f_port: int, frame: bytes, _decoded: Mapping[str, Any] | None = None) -> Reading:
    if f_port == 1:
        need(frame, 1, "a status frame")
        return Reading("status", occupied=bool(frame[0] & 1))
    if f_port == 2:
        need(frame, 1, "a heartbeat")
        temperature = None
        if len(frame) >= 2:
            temperature = float(frame[1] - 256 if frame[1] & 0x80 else frame[1])
        return Reading("heartbeat", occupied=bool(frame[0] & 1), temperature_c=temperature)
    if f_port == 3:
        if len(frame) != 17:
            raise FrameError("short_frame" if len(frame) < 17 else "bad_frame",
                             f"a start-up frame has 17 bytes, got {len(frame)}")
        return Reading("startup", occupied=bool(frame[16] & 1),
                       firmware=f"{frame[12]}.{frame[13]}.{frame[14]}",
                       reset_cause=RESET_CAUSES.get(frame[15], f"code_{frame[15]}"))
    if f_port in (4, 5, 6):
        return Reading("info")
    raise unknown_port(MODEL, f_port, "1 status, 2 heartbeat, 3 start-up, 4-6 device info")
