"""Property tests of the parsers that read untrusted bytes, none of which may raise anything
but its own refusal: the hot routes' query and body parsing (``app.api.hot``), gate passages,
network-server envelopes (ChirpStack JSON and protobuf, TTS) and the vendor decoders."""

from __future__ import annotations

import base64
import json
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from app.api import hot
from app.api.routes.assignments import AssignmentIn
from app.api.routes.facilities import FacilitiesQuery
from app.api.routes.spaces import FreeSpacesQuery
from app.core.errors import InvalidInput
from app.occupancy.messages import Rejected
from app.passages import messages as passages
from sensors.lorawan import envelopes
from sensors.lorawan.decoders import DECODERS, decode
from sensors.lorawan.decoders.base import FrameError, Reading
from tests.fuzz import strategies as hostile

EXAMPLES = int(os.environ.get("CITYPARK_FUZZ_PARSER_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def attempt(call: Any, refusal: type[Exception]) -> tuple[Any, Any]:
    """``(result, None)`` or ``(None, the refusal)``; any other exception fails the test."""
    try:
        return call(), None
    except refusal as exc:
        return None, exc


def _request(query: bytes = b"", body: bytes = b"", content_type: str | None = None) -> Request:
    headers = [] if content_type is None else [(b"content-type", content_type.encode("utf-8", "surrogatepass"))]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/", "query_string": query, "headers": headers},
                   receive)


@pytest.mark.parametrize("model", [FreeSpacesQuery, FacilitiesQuery])
def test_hot_query_parsing_only_ever_refuses_with_invalid_input(model: Any) -> None:
    @FUZZ
    @given(raw=hostile.query_strings)
    def run(raw: str) -> None:
        parsed, refused = attempt(lambda: hot.query(_request(raw.encode("utf-8", "surrogatepass")), model),
                                  InvalidInput)
        if refused is not None:
            assert refused.detail.startswith("query"), refused.detail
            return
        for name in ("lat", "lon", "radius_m"):  # what is accepted is a usable, finite number
            value = getattr(parsed, name)
            assert value is None or math.isfinite(value)
        assert 1 <= parsed.limit <= 10_000

    run()


@pytest.mark.parametrize(("digits", "accepted"), [
    ("3", True), ("²", False), ("٣", False), ("１２", False), ("1" * 5000, False), ("9" * 400, False)])
def test_hot_query_digits_are_ascii_only(digits: str, accepted: bool) -> None:
    raw = f"lat=41.1&lon=122.99&limit={digits}".encode()
    if accepted:
        assert hot.query(_request(raw), FreeSpacesQuery).limit == int(digits)
    else:
        with pytest.raises(InvalidInput, match="query.limit"):
            hot.query(_request(raw), FreeSpacesQuery)


async def test_hot_body_parsing_only_ever_refuses_with_invalid_input() -> None:
    cases: list[tuple[bytes, str | None]] = []

    @FUZZ
    @given(body=hostile.raw_bodies, content_type=st.none() | hostile.content_types)
    def collect(body: bytes, content_type: str | None) -> None:
        cases.append((body, content_type))

    collect()  # drawn synchronously, parsed on this test's event loop
    for body, content_type in cases:
        refused = None
        try:
            parsed = await hot.json_body(_request(body=body, content_type=content_type), AssignmentIn)
        except InvalidInput as exc:  # UnsupportedMediaType (415) is one too
            refused = exc
        if refused is not None:
            assert refused.detail.startswith(("body", "send the body as application/json")), refused.detail
            continue
        assert math.isfinite(parsed.lat)
        assert math.isfinite(parsed.lon)


passage_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={
        "direction": st.one_of(st.sampled_from(["in", "out", "IN", ""]), hostile.json_values),
        "observed_at": st.one_of(st.sampled_from(["2026-12-02T07:59:00Z", "2026-12-02T16:00:00+08:00",
                                                  "2026-12-02 07:59:00", "2999-01-01T00:00:00Z"]),
                                 hostile.control_text, hostile.numbers),
        "passage_id": hostile.ids, "void_of": st.one_of(hostile.ids, hostile.numbers),
        "plate": st.one_of(st.sampled_from(["辽C12345", "", " "]), hostile.control_text, hostile.numbers),
        "lane": st.one_of(hostile.control_text, hostile.numbers), "extra": hostile.json_values}),
    hostile.json_values)


def test_passages_are_a_passage_or_rejected() -> None:
    @FUZZ
    @given(body=passage_bodies, as_list=st.booleans(), raw=st.none() | st.binary(max_size=80),
           topic=st.one_of(hostile.ids, st.builds(lambda o, f: f"parking/{o}/facilities/{f}/passage",
                                                  hostile.ids, hostile.ids)))
    def run(body: Any, as_list: bool, raw: bytes | None, topic: str) -> None:
        passages.topic_ids(topic, "parking")  # an (operator, facility) pair or None, nothing else
        payload = raw if raw is not None else json.dumps([body] if as_list else body, ensure_ascii=False).encode(
            "utf-8", "surrogatepass")
        items, refused = attempt(lambda: passages.decode(payload, allow_list=True), Rejected)
        for item in items or []:
            passage, refused = attempt(lambda item=item: passages.validate(
                item, facility_id="cqgc-garage", now=NOW, max_clock_skew_s=300, plate_key="k"), Rejected)
            passages.redact_item(item)  # what would be stored of it
            if passage is not None:
                assert passage.observed_at <= NOW + timedelta(seconds=300)
                assert passage.direction in ("in", "out", None)
        if refused is not None:
            assert refused.reason
            assert refused.stored_reason.startswith(refused.reason)
            passages.redact(payload)

    run()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


radio = st.lists(st.fixed_dictionaries({}, optional={
    "rssi": hostile.numbers, "snr": hostile.numbers, "gwTime": st.one_of(hostile.control_text, hostile.numbers),
    "time": st.one_of(st.just("2026-12-02T07:59:59Z"), hostile.control_text), "nsTime": hostile.control_text}),
    max_size=3) | hostile.json_values
eui = st.one_of(st.just("a84041000181c6b1"), st.just("A84041000181C6B1"), hostile.ids, hostile.numbers)
frames = st.binary(max_size=24).map(_b64) | hostile.json_values
chirpstack = st.fixed_dictionaries({}, optional={
    "deviceInfo": st.fixed_dictionaries({}, optional={"devEui": eui}) | hostile.json_values,
    "time": st.one_of(st.just("2026-12-02T07:59:58.123456789Z"), hostile.control_text, hostile.numbers),
    "fPort": hostile.numbers, "fCnt": hostile.numbers, "data": frames, "rxInfo": radio,
    "object": hostile.json_values})
tts = st.fixed_dictionaries({}, optional={
    "end_device_ids": st.fixed_dictionaries({}, optional={"dev_eui": eui, "device_id": hostile.ids})
    | hostile.json_values,
    "received_at": st.one_of(st.just("2026-12-02T07:59:58Z"), hostile.control_text),
    "uplink_message": st.fixed_dictionaries({}, optional={
        "f_port": hostile.numbers, "f_cnt": hostile.numbers, "frm_payload": frames, "rx_metadata": radio,
        "decoded_payload": hostile.json_values, "received_at": hostile.control_text}) | hostile.json_values})
envelope_topics = st.one_of(
    st.sampled_from(["application/app-1/device/a84041000181c6b1/event/up", "v3/app@tenant/devices/dev-1/up",
                     "v3/app/devices/dev-1/up", "application//device//event/up", "v3/devices/up"]),
    st.builds(lambda a, d: f"application/{a}/device/{d}/event/up", hostile.ids, hostile.ids),
    st.builds(lambda a, d: f"v3/{a}/devices/{d}/up", hostile.ids, hostile.ids))


def test_envelopes_are_an_uplink_or_rejected_and_frames_a_reading_or_frame_error() -> None:
    @FUZZ
    @given(topic=envelope_topics, body=st.one_of(chirpstack, tts, hostile.json_values),
           raw=st.none() | st.binary(max_size=120), model=st.sampled_from(sorted(DECODERS)))
    def run(topic: str, body: Any, raw: bytes | None, model: str) -> None:
        payload = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        uplink, refused = attempt(lambda: envelopes.parse(topic, payload, received_at=NOW), Rejected)
        if refused is not None:
            assert refused.reason
            return
        assert len(uplink.dev_eui) == 16
        assert set(uplink.dev_eui) <= envelopes.HEX
        assert 0 <= uplink.f_port <= 255
        assert uplink.observed_at.tzinfo is not None
        reading, bad = attempt(lambda: decode(model, uplink.f_port, uplink.frame, uplink.decoded), FrameError)
        assert bad.reason if bad is not None else isinstance(reading, Reading)

    run()
