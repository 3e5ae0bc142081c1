"""The simulator's encoder: topics and payloads of CONTRACT.md's MQTT messages as sensors publish them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

LOCAL = ZoneInfo("Asia/Shanghai")


def rfc3339(at: datetime) -> str:
    """Local time with its offset, as the district's sensors send it (``…+08:00``)."""
    return at.astimezone(LOCAL).isoformat(timespec="milliseconds")


def sensor_topic(root: str, operator_id: str, sensor_id: str, kind: str = "occupancy") -> str:
    return f"{root}/{operator_id}/sensors/{sensor_id}/{kind}"


def count_topic(root: str, operator_id: str, facility_id: str) -> str:
    return f"{root}/{operator_id}/facilities/{facility_id}/count"


def occupancy(occupied: bool, at: datetime, seq: int | None = None, battery_v: float | None = None) -> bytes:
    body: dict[str, object] = {"occupied": occupied, "observed_at": rfc3339(at)}
    if seq is not None:
        body["seq"] = seq
    if battery_v is not None:
        body["battery_v"] = round(battery_v, 2)
    return orjson.dumps(body)


def count(free: int, at: datetime, total: int | None = None) -> bytes:
    body: dict[str, object] = {"free": free, "observed_at": rfc3339(at)}
    if total is not None:
        body["total"] = total
    return orjson.dumps(body)


def heartbeat(at: datetime, battery_v: float | None = None, rssi_dbm: float | None = None) -> bytes:
    body: dict[str, object] = {"observed_at": rfc3339(at)}
    if battery_v is not None:
        body["battery_v"] = round(battery_v, 2)
    if rssi_dbm is not None:
        body["rssi_dbm"] = round(rssi_dbm)
    return orjson.dumps(body)
