"""The MQTT payload parser and validator on hostile topics and payloads: a message is either
an event or a ``Rejected`` with a reason that can be stored; nothing else ever escapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.occupancy.messages import Directory, FacilityInfo, Rejected, SensorInfo, parse_message, validate
from tests.fuzz import strategies as hostile

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
DIRECTORY = Directory(sensors={"mag-000001": SensorInfo("tiedong-city", "s219-00-001", "s219-00")},
                      facilities={"zqdxj-garage": FacilityInfo("zhanqian-underground", 420, True)})
topics = st.one_of(
    st.sampled_from(["parking/tiedong-city/sensors/mag-000001/occupancy",
                     "parking/tiedong-city/sensors/mag-000001/heartbeat",
                     "parking/zhanqian-underground/facilities/zqdxj-garage/count", "parking/x/sensors/a/b/occupancy",
                     "parking//sensors//occupancy", "other/tiedong-city/sensors/mag-000001/occupancy"]),
    st.builds(lambda op, sid, kind: f"parking/{op}/sensors/{sid}/{kind}", hostile.ids, hostile.ids,
              st.sampled_from(["occupancy", "heartbeat", "count"])),
)
bodies = st.one_of(hostile.occupancy_bodies, hostile.count_bodies, hostile.json_values)


def _payload(body: Any, raw: bytes | None) -> bytes:
    return raw if raw is not None else json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None, database=None)
@given(topic=topics, body=bodies, raw=st.none() | st.binary(max_size=64))
def test_parse_and_validate_never_raise_anything_but_rejected(topic: str, body: Any, raw: bytes | None) -> None:
    try:
        message = parse_message(topic, _payload(body, raw), root="parking")
        event = validate(message, directory=DIRECTORY, now=NOW, max_clock_skew_s=300)
    except Rejected as exc:
        rejected = exc
    else:
        rejected = None
    if rejected is not None:  # a stable reason, storable as it is
        assert rejected.reason
        assert rejected.stored_reason.startswith(rejected.reason)
        return
    assert event.observed_at.tzinfo is not None
    assert event.observed_at <= NOW + timedelta(seconds=300)
