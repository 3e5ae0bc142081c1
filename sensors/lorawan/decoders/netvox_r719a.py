"""Netvox R719A radar parking sensor, from Netvox's LoRaWAN application command description.

fPort 6, 11 bytes: byte 0 version, byte 1 device type (0x59 = R719A), byte 2 report type:
- 0x01 status: byte 3 battery in 0.1 V, bit 7 = low battery; byte 4 car present (0/1).
  The R719A reports on change and every max-time interval, so a status is also its heartbeat.
- 0x00 version report (sent after joining, i.e. at start-up): byte 3 software version (in
  tenths), byte 4 hardware version, bytes 5–8 date code (BCD).
fPort 7: configuration responses (alive, nothing about the space).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensors.lorawan.decoders.base import FrameError, Reading, need, unknown_port

MODEL = "netvox-r719a"
DEVICE_TYPE = 0x59


def decode(f_port: int, frame: bytes, _decoded: Mapping[str, Any] | None = None) -> Reading:
    if f_port == 7:
        return Reading("info")
    if f_port != 6:
        raise unknown_port(MODEL, f_port, "6 reports, 7 configuration responses")
    need(frame, 5, "a report")
    if frame[1] != DEVICE_TYPE:
        raise FrameError("bad_frame", f"device type 0x{frame[1]:02x} is not an R719A (0x59)")
    if frame[2] == 0x00:
        need(frame, 9, "a version report")
        return Reading("startup", firmware=f"sw {frame[3] / 10:g} hw {frame[4]} date {frame[5:9].hex()}",
                       reset_cause="startup")
    if frame[2] != 0x01:
        raise FrameError("bad_frame", f"report type 0x{frame[2]:02x} is not defined")
    if frame[4] > 1:
        raise FrameError("bad_frame", f"car present is {frame[4]}, not 0 or 1")
    return Reading("status", occupied=frame[4] == 1, battery_v=(frame[3] & 0x7F) / 10,
                   low_battery=bool(frame[3] & 0x80))
