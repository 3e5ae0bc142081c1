"""An uplink of a known device → citypark events (pure): decode its frame with the device's
model, then an :class:`Occupancy` (status, heartbeat and start-up frames carry the current
occupancy) or a :class:`Heartbeat` (frames that only prove the device alive), and a
:class:`DeviceReport` with its radio, battery, temperature, frame counter and resets.

The frame counter becomes ``seq``. Rejections (``Rejected``) carry a stable reason:
``unknown_device``, ``unknown_port``, ``short_frame``, ``bad_frame``, ``no_occupancy``,
``not_a_space_sensor``, ``timestamp_in_future``, ``timestamp_before_2000``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.devices.service import Device, DeviceDirectory, DeviceReport
from app.occupancy.messages import EPOCH_FLOOR, Event, Heartbeat, Occupancy, Rejected
from sensors.lorawan import decoders
from sensors.lorawan.envelopes import Uplink


@dataclass(frozen=True, slots=True)
class Accepted:
    event: Event
    report: DeviceReport
    timed_by_arrival: bool  # no time in the envelope: re-deliveries are found by (sensor, seq)


def accept(uplink: Uplink, *, directory: DeviceDirectory, now: datetime, max_clock_skew_s: float) -> Accepted:
    """The events of one uplink, or :class:`Rejected`."""
    device = directory.devices.get(uplink.dev_eui)
    if device is None:
        raise Rejected("unknown_device", f"no sensor has dev_eui {uplink.dev_eui}")
    _check_time(uplink.observed_at, now, max_clock_skew_s)
    try:
        reading = decoders.decode(device.model, uplink.f_port, uplink.frame, uplink.decoded)
    except decoders.FrameError as exc:
        raise Rejected(exc.reason, f"{device.model} {device.sensor_id}: {exc.detail}") from None
    report = DeviceReport(device.sensor_id, uplink.observed_at, uplink.f_cnt, reading.kind, uplink.rssi_dbm,
                          uplink.snr_db, reading.battery_v, reading.temperature_c, reading.firmware,
                          reading.reset_cause, uplink.network)
    return Accepted(_event(device, uplink, reading), report, uplink.time_source == "received")


def _event(device: Device, uplink: Uplink, reading: decoders.Reading) -> Event:
    if reading.occupied is None:
        return Heartbeat(device.sensor_id, device.space_id, uplink.observed_at, None, None, uplink.network)
    if device.space_id is None:
        raise Rejected("not_a_space_sensor", f"sensor {device.sensor_id!r} is not on a space")
    # battery_v stays off the event: the report carries it to the sensor row (one update a batch)
    return Occupancy(device.sensor_id, device.space_id, reading.occupied, uplink.observed_at,
                     uplink.f_cnt, None, uplink.network)


def _check_time(at: datetime, now: datetime, skew: float) -> None:
    if at > now + timedelta(seconds=skew):
        raise Rejected("timestamp_in_future", f"{at.isoformat()} is ahead of the server clock")
    if at < EPOCH_FLOOR:
        raise Rejected("timestamp_before_2000", f"{at.isoformat()} is before 2000")
