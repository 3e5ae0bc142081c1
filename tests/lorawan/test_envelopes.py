"""Network-server envelopes: ChirpStack v4 JSON and protobuf, The Things Stack v3, with the
fields they leave out, and anything else rejected with a reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from chirpstack_api import integration
from hypothesis import given, settings
from hypothesis import strategies as st

from app.occupancy.messages import Rejected
from sensors.lorawan import envelopes

RECEIVED = datetime(2026, 12, 2, 8, 0, 5, tzinfo=UTC)
CS_TOPIC = "application/7c1d0c54-1f6a-4d5e-9b0d-2a7a3b0c9a11/device/fc0fe7fffe0002ee/event/up"
# A ChirpStack v4 "up" event as its MQTT integration publishes it (JSON mode).
CS_JSON = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d", "time": "2026-12-02T07:59:58.123456789Z",
    "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "city",
                   "applicationId": "7c1d0c54-1f6a-4d5e-9b0d-2a7a3b0c9a11", "applicationName": "parking",
                   "deviceProfileName": "Bosch PLS", "deviceName": "s219-00-001", "devEui": "fc0fe7fffe0002ee"},
    "devAddr": "01fe0a3c", "adr": True, "dr": 5, "fCnt": 42, "fPort": 2, "confirmed": False, "data": "AR4=",
    "rxInfo": [{"gatewayId": "a840411e12340000", "uplinkId": 1, "rssi": -109, "snr": -3.5,
                "nsTime": "2026-12-02T07:59:58.2Z"},
               {"gatewayId": "a840411e12340001", "uplinkId": 2, "rssi": -91, "snr": 6.25}],
}
TTS_TOPIC = "v3/tiedong-parking@city/devices/s219-02-001/up"
TTS_JSON = {
    "end_device_ids": {"device_id": "s219-02-001", "application_ids": {"application_id": "tiedong-parking"},
                       "dev_eui": "00137A10000002EE", "join_eui": "0000000000000000", "dev_addr": "260B1234"},
    "correlation_ids": ["as:up:01H..."], "received_at": "2026-12-02T07:59:59.5Z",
    "uplink_message": {"session_key_id": "AXA50...", "f_port": 6, "f_cnt": 7,
                       "frm_payload": base64.b64encode(bytes([1, 0x59, 1, 0x24, 1, 0, 0, 0, 0, 0, 0])).decode(),
                       "decoded_payload": {"Device": "R719A", "CarOnOff": 1},
                       "rx_metadata": [{"gateway_ids": {"gateway_id": "gw1"}, "rssi": -42, "channel_rssi": -42,
                                        "snr": 9.5, "time": "2026-12-02T07:59:59.4Z"}],
                       "received_at": "2026-12-02T07:59:59.6Z"},
}


def parse(topic: str, body: object) -> envelopes.Uplink:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return envelopes.parse(topic, payload, received_at=RECEIVED)


def test_chirpstack_json() -> None:
    up = parse(CS_TOPIC, CS_JSON)
    assert (up.network, up.dev_eui, up.f_port, up.f_cnt, up.frame) == ("chirpstack", "fc0fe7fffe0002ee", 2, 42,
                                                                        b"\x01\x1e")
    assert up.observed_at == datetime(2026, 12, 2, 7, 59, 58, 123456, tzinfo=UTC)
    assert (up.time_source, up.rssi_dbm, up.snr_db) == ("device", -91.0, 6.25)  # the best gateway


def test_chirpstack_leaves_zero_fields_and_time_out() -> None:
    body = {k: v for k, v in CS_JSON.items() if k not in ("fCnt", "time", "fPort")}
    up = parse(CS_TOPIC, body)
    assert (up.f_cnt, up.f_port, up.time_source) == (0, 0, "gateway")
    assert up.observed_at == datetime(2026, 12, 2, 7, 59, 58, 200000, tzinfo=UTC)  # rxInfo[].nsTime
    bare = {**body, "rxInfo": [{"rssi": -100}]}
    assert (parse(CS_TOPIC, bare).observed_at, parse(CS_TOPIC, bare).time_source) == (RECEIVED, "received")


def test_chirpstack_protobuf_built_with_chirpstack_api() -> None:
    event = integration.UplinkEvent()
    event.device_info.dev_eui, event.f_cnt, event.f_port, event.data = "FC0FE7FFFE0002EE", 9, 3, bytes(17)
    event.time.FromDatetime(datetime(2026, 12, 2, 7, 0, tzinfo=UTC))
    event.rx_info.add(rssi=-101, snr=2.5)
    up = parse(CS_TOPIC, event.SerializeToString())
    assert (up.dev_eui, up.f_cnt, up.f_port, up.frame, up.time_source) == ("fc0fe7fffe0002ee", 9, 3, bytes(17),
                                                                             "device")
    assert (up.observed_at, up.rssi_dbm, up.snr_db) == (datetime(2026, 12, 2, 7, 0, tzinfo=UTC), -101.0, 2.5)


def test_tts_with_and_without_tenant() -> None:
    up = parse(TTS_TOPIC, TTS_JSON)
    assert (up.network, up.dev_eui, up.f_port, up.f_cnt) == ("tts", "00137a10000002ee", 6, 7)
    assert up.observed_at == datetime(2026, 12, 2, 7, 59, 59, 500000, tzinfo=UTC)
    assert up.decoded == {"Device": "R719A", "CarOnOff": 1}
    assert parse("v3/tiedong-parking/devices/s219-02-001/up", TTS_JSON).dev_eui == "00137a10000002ee"


def test_tts_examples_without_f_cnt_and_received_at() -> None:
    up_message = {k: v for k, v in TTS_JSON["uplink_message"].items()  # type: ignore[attr-defined]
                  if k not in ("f_cnt", "received_at")}
    body = {**{k: v for k, v in TTS_JSON.items() if k != "received_at"}, "uplink_message": up_message}
    up = parse(TTS_TOPIC, body)
    assert (up.f_cnt, up.time_source) == (0, "gateway")
    assert up.observed_at == datetime(2026, 12, 2, 7, 59, 59, 400000, tzinfo=UTC)


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    (CS_TOPIC, b"{oops", "bad_json"),
    (CS_TOPIC, b"\xff\xff\xff", "bad_protobuf"),
    (CS_TOPIC, json.dumps({**CS_JSON, "data": "not base64!"}).encode(), "bad_base64"),
    (CS_TOPIC, json.dumps({**CS_JSON, "fCnt": -1}).encode(), "invalid_field"),
    (CS_TOPIC, json.dumps({**CS_JSON, "time": "yesterday"}).encode(), "bad_timestamp"),
    (CS_TOPIC.replace("fc0fe7fffe0002ee", "fc0fe7fffe0002ef"), json.dumps(CS_JSON).encode(), "envelope_mismatch"),
    (CS_TOPIC.replace("fc0fe7fffe0002ee", "xyz"), json.dumps({**CS_JSON, "deviceInfo": {}}).encode(), "invalid_field"),
    (TTS_TOPIC, json.dumps({"uplink_message": {}}).encode(), "invalid_field"),
    (TTS_TOPIC, b"[1, 2]", "bad_json"),
    ("v3/app/devices/d/join", b"{}", "bad_topic"),
    (CS_TOPIC, b"{" + b" " * 70000 + b"}", "payload_too_large"),
])
def test_bad_envelopes_are_rejected_with_a_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        envelopes.parse(topic, payload, received_at=RECEIVED)
    assert info.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from([CS_TOPIC, TTS_TOPIC]), payload=st.binary(max_size=200))
def test_random_payloads_are_uplinks_or_rejections(topic: str, payload: bytes) -> None:
    try:
        up = envelopes.parse(topic, payload, received_at=RECEIVED)
    except Rejected as exc:
        reason = exc.reason
    else:
        reason = ""
        assert len(up.dev_eui) == 16
    assert reason or up
