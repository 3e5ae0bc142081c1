"""Golden frames per decoder (the vendors' published examples where there are some: the
payload-format examples of Bosch, Nwave and Netvox in The Things Network's device repository),
and random frames that never raise anything but FrameError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.lorawan.decoders import DECODERS, FrameError, Reading, decode

GOLDEN = [
    # Bosch TPS110, vendor examples: status, heartbeat with -1 °C, start-up fw 0.29.2 "system request"
    ("bosch-tps110", 1, [0x01], Reading("status", occupied=True)),
    ("bosch-tps110", 1, [0x00], Reading("status", occupied=False)),
    ("bosch-tps110", 2, [0x01, 0xFF], Reading("heartbeat", occupied=True, temperature_c=-1.0)),
    ("bosch-tps110", 2, [0x00, 0x17], Reading("heartbeat", occupied=False, temperature_c=23.0)),
    ("bosch-tps110", 2, [0x00], Reading("heartbeat", occupied=False)),  # older firmware: no temperature
    ("bosch-tps110", 3, [0x24, 3, 0, 0, 0x75, 3, 0, 0, 0, 0, 0, 0, 0, 29, 2, 3, 1],
     Reading("startup", occupied=True, firmware="0.29.2", reset_cause="system_request")),
    ("bosch-tps110", 3, [0] * 12 + [1, 2, 3, 2, 0],
     Reading("startup", occupied=False, firmware="1.2.3", reset_cause="power_on")),
    ("bosch-tps110", 4, [1, 2, 3], Reading("info")),
    # Nwave NPS310, vendor examples: status, heartbeat, start-up fw 1.13.0 after power-on
    ("nwave-nps310", 1, [0x01], Reading("status", occupied=True)),
    ("nwave-nps310", 2, [0x00], Reading("heartbeat", occupied=False)),
    ("nwave-nps310", 3, [0x01, 0x0D, 0x00, 0x02, 0x00],
     Reading("startup", occupied=False, firmware="1.13.0", reset_cause="power_on")),
    ("nwave-nps310", 3, [2, 0, 1, 4, 1], Reading("startup", occupied=True, firmware="2.0.1", reset_cause="brownout")),
    # Netvox R719A, vendor examples: status 3.0 V car present; version report sw 10 hw 11 2020-04-24
    ("netvox-r719a", 6, [0x01, 0x59, 0x01, 0x1E, 0x01, 0, 0, 0, 0, 0, 0],
     Reading("status", occupied=True, battery_v=3.0, low_battery=False)),
    ("netvox-r719a", 6, [0x01, 0x59, 0x01, 0x9C, 0x00, 0, 0, 0, 0, 0, 0],
     Reading("status", occupied=False, battery_v=2.8, low_battery=True)),
    ("netvox-r719a", 6, [0x01, 0x59, 0x00, 0x64, 0x0B, 0x20, 0x20, 0x04, 0x24, 0, 0],
     Reading("startup", firmware="sw 10 hw 11 date 20200424", reset_cause="startup")),
    ("netvox-r719a", 7, [0x81, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0], Reading("info")),
]

REJECTED = [
    ("bosch-tps110", 1, [], "short_frame"),
    ("bosch-tps110", 3, [0] * 16, "short_frame"),
    ("bosch-tps110", 3, [0] * 18, "bad_frame"),
    ("bosch-tps110", 9, [1], "unknown_port"),
    ("nwave-nps310", 3, [1, 2, 3], "short_frame"),
    ("nwave-nps310", 4, [1], "unknown_port"),
    ("netvox-r719a", 1, [1], "unknown_port"),
    ("netvox-r719a", 6, [0x01, 0xAF, 0x01, 0x1E, 0x01], "bad_frame"),  # an R719B, not an R719A
    ("netvox-r719a", 6, [0x01, 0x59, 0x07, 0x1E, 0x01], "bad_frame"),
    ("netvox-r719a", 6, [0x01, 0x59, 0x01, 0x1E, 0x05], "bad_frame"),
    ("netvox-r719a", 6, [0x01, 0x59], "short_frame"),
    ("nope-model", 1, [1], "unknown_model"),
]


@pytest.mark.parametrize(("model", "port", "frame", "want"), GOLDEN)
def test_golden_frames(model: str, port: int, frame: list[int], want: Reading) -> None:
    assert decode(model, port, bytes(frame)) == want


@pytest.mark.parametrize(("model", "port", "frame", "reason"), REJECTED)
def test_frames_without_a_reading_are_rejected_with_a_reason(model: str, port: int, frame: list[int],
                                                             reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode(model, port, bytes(frame))
    assert info.value.reason == reason
    assert info.value.detail


@pytest.mark.parametrize(("decoded", "occupied"), [
    ({"occupied": True}, True), ({"carStatus": 0}, False), ({"CarOnOff": 1}, True),
    ({"occupancy": "vacant"}, False), ({"status": "Occupied"}, True), ({"data": {"parking_status": "free"}}, False),
])
def test_decoded_takes_the_network_servers_fields(decoded: dict[str, object], occupied: bool) -> None:
    assert decode("decoded", 1, b"\xff", decoded).occupied is occupied


def test_decoded_reads_battery_temperature_and_kind() -> None:
    got = decode("decoded", 0, b"", {"occupied": False, "battery_v": 3.4, "temperature": 12, "type": "heartbeat"})
    assert got == Reading("heartbeat", occupied=False, battery_v=3.4, temperature_c=12.0)


@pytest.mark.parametrize(("decoded", "reason"), [
    (None, "no_occupancy"), ({}, "no_occupancy"), ({"battery": 3.6}, "no_occupancy"),
    ({"occupied": "maybe"}, "bad_frame"), ({"carStatus": 7}, "bad_frame"),
])
def test_decoded_without_an_occupancy_is_rejected(decoded: dict[str, object] | None, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode("decoded", 1, b"", decoded)
    assert info.value.reason == reason


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                       max_size=4), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(sorted(DECODERS)), port=st.integers(0, 255), frame=st.binary(max_size=64),
       decoded=st.none() | st.dictionaries(st.sampled_from(["occupied", "carStatus", "occupancy", "status", "data",
                                                             "battery", "temperature", "type", "x"]),
                                           json_values, max_size=5))
def test_random_frames_never_raise_anything_else(model: str, port: int, frame: bytes,
                                                 decoded: dict[str, object] | None) -> None:
    try:
        reading = decode(model, port, frame, decoded)
    except FrameError as exc:
        reason = exc.reason
    else:
        reason = None
    if reason is not None:
        assert reason in {"unknown_port", "short_frame", "bad_frame", "no_occupancy"}
        return
    assert reading.kind in {"status", "heartbeat", "startup", "info"}
    assert reading.occupied is None or isinstance(reading.occupied, bool)
