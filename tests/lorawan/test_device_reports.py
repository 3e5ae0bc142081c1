"""Resets found in a sensor's reports: start-up frames, and counters that drop on newer frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.devices.service import DeviceReport, _resets

T = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def report(minute: int, fcnt: int, kind: str = "status", cause: str | None = None) -> DeviceReport:
    return DeviceReport("mag-1", T + timedelta(minutes=minute), fcnt, kind, reset_cause=cause)


def test_a_counter_that_drops_on_a_newer_frame_is_a_reset() -> None:
    got = _resets([report(1, 41), report(2, 0), report(3, 1)], 40, T)
    assert [(r[1], r[2], r[4]) for r in got] == [(T + timedelta(minutes=2), "fcnt_reset", 0)]


def test_a_late_frame_with_a_lower_counter_is_not_a_reset() -> None:
    assert _resets([report(-5, 30)], 40, T) == []


def test_a_start_up_frame_is_the_reset_and_not_also_a_counter_reset() -> None:
    got = _resets([report(1, 0, "startup", "power_on"), report(2, 1)], 900, T)
    assert [(r[2], r[4]) for r in got] == [("power_on", 0)]


def test_first_frames_of_a_new_device_are_no_reset() -> None:
    assert _resets([report(1, 7), report(2, 8)], None, None) == []
