"""Network-server envelopes → :class:`Uplink` (pure): ChirpStack v4 (JSON or protobuf) and
The Things Stack v3 (JSON).

Topics (CONTRACT.md "Real inputs"): ChirpStack ``application/{application_id}/device/{dev_eui}/event/up``;
TTS ``v3/{application_id}@{tenant_id}/devices/{device_id}/up`` or ``v3/{application_id}/devices/{device_id}/up``.

Both servers leave zero and empty fields out: a missing frame counter is 0 and a missing port
is 0 (a MAC-only frame). The observation time is the envelope's own time (ChirpStack ``time``;
TTS ``received_at``), else the gateways' (ChirpStack ``rxInfo[].gwTime``/``nsTime``; TTS
``rx_metadata[].time``/``received_at``), else the time citypark received the message
(``time_source`` says which). RSSI and SNR are the best gateway's.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from app.occupancy.messages import Rejected

MAX_ENVELOPE_BYTES = 65536
Network = Literal["chirpstack", "tts"]
TimeSource = Literal["device", "gateway", "received"]
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Uplink:
    network: Network
    dev_eui: str  # 16 lower-case hex digits
    f_port: int
    f_cnt: int
    frame: bytes
    decoded: Mapping[str, Any] | None
    observed_at: datetime
    time_source: TimeSource
    rssi_dbm: float | None = None
    snr_db: float | None = None


def network_of(topic: str) -> Network | None:
    """Which envelope a topic carries, or None when it is not a network server's uplink."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[0] == "application" and parts[2] == "device" and parts[4:] == ["event", "up"]:
        return "chirpstack"
    if len(parts) == 5 and parts[0] == "v3" and parts[2] == "devices" and parts[4] == "up":
        return "tts"
    return None


def subscriptions(formats: frozenset[str]) -> list[str]:
    """Topic filters of the enabled formats (``chirpstack`` covers JSON and protobuf)."""
    out = []
    if "chirpstack" in formats:
        out.append("application/+/device/+/event/up")
    if "tts" in formats:
        out.append("v3/+/devices/+/up")
    return out


def parse(topic: str, payload: bytes, *, received_at: datetime) -> Uplink:
    """The uplink in a network server's message, or :class:`Rejected`."""
    network = network_of(topic)
    if network is None:
        raise Rejected("bad_topic", "not a ChirpStack or The Things Stack uplink topic")
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise Rejected("payload_too_large", f"{len(payload)} bytes, at most {MAX_ENVELOPE_BYTES}")
    if network == "tts":
        return _tts(_json(payload), received_at)
    if payload.lstrip()[:1] == b"{":
        return _chirpstack_json(topic, _json(payload), received_at)
    return _chirpstack_protobuf(topic, payload, received_at)


def _json(payload: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected("bad_json", str(exc)[:200]) from None
    if not isinstance(body, dict):
        raise Rejected("bad_json", "the envelope must be a JSON object")
    return body


# --- ChirpStack v4 -------------------------------------------------------------------------


def _chirpstack_json(topic: str, body: dict[str, Any], received_at: datetime) -> Uplink:
    info = _object(body, "deviceInfo")
    dev_eui = _dev_eui(info.get("devEui", topic.split("/")[3]))
    if dev_eui != _dev_eui(topic.split("/")[3]):
        raise Rejected("envelope_mismatch", f"topic and deviceInfo.devEui differ ({dev_eui})")
    rx = _list(body, "rxInfo")
    at, source = _first_time([body.get("time")], received_at)
    if source == "received":
        at, source = _first_time([r.get(k) for r in rx for k in ("gwTime", "nsTime")], received_at, "gateway")
    rssi, snr = _best_radio(rx, "rssi", "snr")
    decoded = body.get("object")
    return Uplink("chirpstack", dev_eui, _uint(body, "fPort", 255), _uint(body, "fCnt", 2**32 - 1),
                  _base64(body.get("data")), decoded if isinstance(decoded, dict) else None,
                  at, source, rssi, snr)


def _chirpstack_protobuf(topic: str, payload: bytes, received_at: datetime) -> Uplink:
    event = integration.UplinkEvent()
    try:
        event.ParseFromString(payload)
    except (DecodeError, ValueError) as exc:
        raise Rejected("bad_protobuf", f"not a ChirpStack UplinkEvent: {exc}"[:200]) from None
    topic_eui = _dev_eui(topic.split("/")[3])
    dev_eui = _dev_eui(event.device_info.dev_eui) if event.device_info.dev_eui else topic_eui
    if dev_eui != topic_eui:
        raise Rejected("envelope_mismatch", f"topic and device_info.dev_eui differ ({dev_eui})")
    at, source = _protobuf_time(event, received_at)
    rssi, snr = _best_radio([{"rssi": r.rssi, "snr": r.snr} for r in event.rx_info], "rssi", "snr")
    decoded = json_format.MessageToDict(event.object) if event.HasField("object") else None
    if event.f_port > 255:
        raise Rejected("invalid_field", f"fPort {event.f_port} is out of range")
    return Uplink("chirpstack", dev_eui, event.f_port, event.f_cnt, bytes(event.data), decoded,
                  at, source, rssi, snr)


def _protobuf_time(event: Any, received_at: datetime) -> tuple[datetime, TimeSource]:
    try:
        if event.HasField("time"):
            return event.time.ToDatetime(tzinfo=UTC), "device"
        for rx in event.rx_info:
            for name in ("gw_time", "ns_time"):
                if rx.HasField(name):
                    return getattr(rx, name).ToDatetime(tzinfo=UTC), "gateway"
    except (ValueError, OverflowError, OSError):
        raise Rejected("bad_timestamp", "a protobuf timestamp is out of range") from None
    return received_at, "received"


# --- The Things Stack v3 --------------------------------------------------------------------


def _tts(body: dict[str, Any], received_at: datetime) -> Uplink:
    ids = _object(body, "end_device_ids")
    if "dev_eui" not in ids:
        raise Rejected("invalid_field", "end_device_ids.dev_eui is missing (an ABP device without a DevEUI?)")
    dev_eui = _dev_eui(ids["dev_eui"])
    up = _object(body, "uplink_message")
    rx = _list(up, "rx_metadata")
    at, source = _first_time([body.get("received_at"), up.get("received_at")], received_at)
    if source == "received":
        at, source = _first_time([r.get(k) for r in rx for k in ("time", "received_at")], received_at, "gateway")
    rssi, snr = _best_radio(rx, "rssi", "snr")
    decoded = up.get("decoded_payload")
    return Uplink("tts", dev_eui, _uint(up, "f_port", 255), _uint(up, "f_cnt", 2**32 - 1),
                  _base64(up.get("frm_payload")), decoded if isinstance(decoded, dict) else None,
                  at, source, rssi, snr)


# --- fields ---------------------------------------------------------------------------------


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name, {})
    if not isinstance(value, dict):
        raise Rejected("invalid_field", f"{name} must be an object")
    return value


def _list(body: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name, [])
    if not isinstance(value, list):
        raise Rejected("invalid_field", f"{name} must be a list")
    return [v for v in value if isinstance(v, dict)]


def _dev_eui(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 16 or not set(value.lower()) <= HEX:
        raise Rejected("invalid_field", f"DevEUI {str(value)[:40]!r} is not 16 hex digits")
    return value.lower()


def _uint(body: Mapping[str, Any], name: str, hi: int) -> int:
    value = body.get(name, 0)
    if isinstance(value, str) and value.isdigit():  # protobuf JSON writes 64-bit integers as strings
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
        raise Rejected("invalid_field", f"{name} must be an integer between 0 and {hi}")
    return value


def _base64(value: Any) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise Rejected("invalid_field", "the frame payload must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("bad_base64", "the frame payload is not valid base64") from None


def _first_time(values: Sequence[Any], received_at: datetime,
                source: TimeSource = "device") -> tuple[datetime, TimeSource]:
    for value in values:
        if isinstance(value, str) and len(value) <= 40:
            try:
                return _aware(datetime.fromisoformat(value)), source
            except ValueError:
                raise Rejected("bad_timestamp", f"{value!r} is not RFC 3339") from None
    return received_at, "received"


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise Rejected("bad_timestamp", "timestamps need a UTC offset")
    return value.astimezone(UTC)


def _best_radio(rx: Sequence[Mapping[str, Any]], rssi_key: str, snr_key: str) -> tuple[float | None, float | None]:
    """RSSI and SNR of the gateway that heard the frame best (highest RSSI)."""
    best: tuple[float, float | None] | None = None
    for r in rx:
        rssi, snr = _bounded(r.get(rssi_key), 200), _bounded(r.get(snr_key), 50)
        if rssi is not None and (best is None or rssi > best[0]):
            best = (rssi, snr)
    return (best[0], best[1]) if best else (None, None)


def _bounded(value: Any, limit: float) -> float | None:
    """A finite number within ±limit, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
            and -limit <= value <= limit:
        return float(value)
    return None
