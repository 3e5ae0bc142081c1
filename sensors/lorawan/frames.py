"""The publishing side (simulator, tests): vendor frames and network-server envelopes, laid out
as the devices and servers send them."""

from __future__ import annotations

import base64
from datetime import datetime

import orjson
from chirpstack_api import integration

# fPorts of (status, heartbeat, start-up) per model; the R719A reports everything on port 6
PORTS = {"bosch-tps110": (1, 2, 3), "nwave-nps310": (1, 2, 3), "netvox-r719a": (6, 6, 6)}


def frame(model: str, kind: str, occupied: bool, *, battery_v: float = 3.6, temperature_c: int = 20,
          firmware: tuple[int, int, int] = (0, 29, 2), reset_cause: int = 2) -> tuple[int, bytes]:
    """``(f_port, bytes)`` of a ``status``, ``heartbeat`` or ``startup`` frame of ``model``."""
    port = PORTS[model][("status", "heartbeat", "startup").index(kind)]
    bit = int(occupied)
    if model == "netvox-r719a":
        if kind == "startup":
            return port, bytes([0x01, 0x59, 0x00, 0x64, 0x0B, 0x20, 0x26, 0x11, 0x29, 0, 0])
        volts = max(0, min(127, round(battery_v * 10))) | (0x80 if battery_v < 3.2 else 0)
        return port, bytes([0x01, 0x59, 0x01, volts, bit, 0, 0, 0, 0, 0, 0])
    if kind == "status":
        return port, bytes([bit])
    if kind == "heartbeat":
        return port, bytes([bit, temperature_c & 0xFF]) if model == "bosch-tps110" else bytes([bit])
    if model == "bosch-tps110":
        return port, bytes(12) + bytes(firmware) + bytes([reset_cause, bit])
    return port, bytes(firmware) + bytes([reset_cause, bit])


def chirpstack_topic(application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui.lower()}/event/up"


def tts_topic(application_id: str, device_id: str, tenant_id: str | None = None) -> str:
    app = f"{application_id}@{tenant_id}" if tenant_id else application_id
    return f"v3/{app}/devices/{device_id}/up"


def chirpstack_json(application_id: str, dev_eui: str, f_port: int, f_cnt: int, data: bytes, at: datetime | None,
                    *, rssi: int = -97, snr: float = 7.5, decoded: dict[str, object] | None = None) -> bytes:
    """A ChirpStack v4 ``up`` event as its MQTT integration writes it (zero/empty fields left out)."""
    body: dict[str, object] = {
        "deduplicationId": f"{dev_eui}-{f_cnt}",
        "deviceInfo": {"tenantName": "city", "applicationId": application_id, "applicationName": "parking",
                       "deviceProfileName": "parking sensor", "deviceName": dev_eui, "devEui": dev_eui.lower()},
        "devAddr": dev_eui[-8:], "adr": True, "dr": 5, "confirmed": False,
        "data": base64.b64encode(data).decode(),
        "rxInfo": [{"gatewayId": "a840411e12340000", "uplinkId": f_cnt + 1, "rssi": rssi, "snr": snr,
                    "channel": 1, "location": {}, "context": "AAAAAA==", "crcStatus": "CRC_OK"}],
        "txInfo": {"frequency": 486300000, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7,
                                                                   "codeRate": "CR_4_5"}}},
    }
    if at is not None:
        body["time"] = at.isoformat().replace("+00:00", "Z")
    if f_cnt:
        body["fCnt"] = f_cnt
    if f_port:
        body["fPort"] = f_port
    if decoded is not None:
        body["object"] = decoded
    return orjson.dumps(body)


def chirpstack_protobuf(application_id: str, dev_eui: str, f_port: int, f_cnt: int, data: bytes,
                        at: datetime | None, *, rssi: int = -97, snr: float = 7.5) -> bytes:
    """The same event in ChirpStack's binary form (``json=false``), built with ``chirpstack-api``."""
    event = integration.UplinkEvent()
    event.deduplication_id = f"{dev_eui}-{f_cnt}"
    event.device_info.application_id = application_id
    event.device_info.dev_eui = dev_eui.lower()
    event.f_cnt, event.f_port, event.data = f_cnt, f_port, data
    if at is not None:
        event.time.FromDatetime(at)
    rx = event.rx_info.add()
    rx.gateway_id, rx.rssi, rx.snr = "a840411e12340000", rssi, snr
    return event.SerializeToString()


def tts_json(application_id: str, device_id: str, dev_eui: str, f_port: int, f_cnt: int, data: bytes,
             at: datetime | None, *, rssi: int = -97, snr: float = 7.5,
             decoded: dict[str, object] | None = None) -> bytes:
    """A The Things Stack v3 ``up`` message (``f_cnt``/``received_at`` left out when absent)."""
    stamp = at.isoformat().replace("+00:00", "Z") if at is not None else None
    up: dict[str, object] = {
        "session_key_id": "AXA50...", "f_port": f_port, "frm_payload": base64.b64encode(data).decode(),
        "rx_metadata": [{"gateway_ids": {"gateway_id": "gw-tiedong-1", "eui": "A840411E12340000"},
                         "rssi": rssi, "channel_rssi": rssi, "snr": snr}],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}, "frequency": "486300000"},
    }
    if f_cnt:
        up["f_cnt"] = f_cnt
    if decoded is not None:
        up["decoded_payload"] = decoded
    if stamp:
        up["received_at"] = stamp
    body: dict[str, object] = {
        "end_device_ids": {"device_id": device_id, "application_ids": {"application_id": application_id},
                           "dev_eui": dev_eui.upper(), "join_eui": "0000000000000000",
                           "dev_addr": dev_eui[-8:].upper()},
        "correlation_ids": [f"as:up:{dev_eui}-{f_cnt}"],
        "uplink_message": up,
    }
    if stamp:
        body["received_at"] = stamp
    return orjson.dumps(body)
