"""What a decoder returns (:class:`Reading`) or raises (:class:`FrameError`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# status: an occupancy report; heartbeat: the periodic "still here" that carries the current
# occupancy; startup: the device (re)started; info: a frame the model defines that says
# nothing about the space (version and configuration reports): it only proves the device is alive.
Kind = Literal["status", "heartbeat", "startup", "info"]


@dataclass(frozen=True, slots=True)
class Reading:
    kind: Kind
    occupied: bool | None = None
    battery_v: float | None = None
    low_battery: bool | None = None
    temperature_c: float | None = None
    firmware: str | None = None
    reset_cause: str | None = None


class FrameError(ValueError):
    """A frame that cannot be read; ``reason`` is a stable code for ``rejected_messages``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def need(frame: bytes, n: int, what: str) -> None:
    if len(frame) < n:
        raise FrameError("short_frame", f"{what} needs {n} bytes, got {len(frame)}")


def unknown_port(model: str, f_port: int, known: str) -> FrameError:
    return FrameError("unknown_port", f"{model} sends nothing on fPort {f_port} (known: {known})")
