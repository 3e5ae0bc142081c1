"""Gate passage messages (pure): topic, payload, validation, the plate's keyed hash.

MQTT ``{root}/{operator_id}/facilities/{facility_id}/passage`` and HTTP
``POST /v1/operators/{operator_id}/facilities/{facility_id}/passages`` carry
``{"direction": "in"|"out", "observed_at", "passage_id"?, "plate"?, "lane"?, "void_of"?}``
(HTTP: one object or a list). ``direction`` may be left out only by a pure void (``void_of``
and nothing to count). A passage without ``passage_id`` gets a deterministic one from its
content, so a re-delivered copy is still the same passage.

Plates never leave this module in clear: :func:`plate_hash` is HMAC-SHA256 of the normalised
plate (upper case, without spaces, dots and dashes: ``辽C·12345`` = ``辽C12345``) under
``CITYPARK_PLATE_KEY``; :func:`redact` blanks them in payloads kept as rejections.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from app.occupancy.messages import FacilityInfo, Rejected, parse_observed_at

MAX_PASSAGE_BYTES = 4096
MAX_LIST = 1000
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$")
PLATE_NOISE = re.compile(r"[\s·.\-_]+")
FIELDS = {"direction", "observed_at", "passage_id", "plate", "lane", "void_of"}
SAFE_FIELDS = FIELDS - {"plate"}
Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class PassageIn:
    facility_id: str
    passage_id: str
    direction: Direction | None
    observed_at: datetime
    lane: str | None = None
    plate_hash: bytes | None = None
    void_of: str | None = None
    source: str = "mqtt"


def topic_ids(topic: str, root: str) -> tuple[str, str] | None:
    """``(operator_id, facility_id)`` of a passage topic, None for any other topic."""
    root_parts = root.split("/")
    parts = topic.split("/")
    rest = parts[len(root_parts):]
    if parts[: len(root_parts)] != root_parts or len(rest) != 4 or rest[1] != "facilities" or rest[3] != "passage":
        return None
    return (rest[0], rest[2]) if rest[0] and rest[2] else None


def plate_hash(plate: str, key: str) -> bytes:
    """The keyed hash that links an exit to its entry; the plate itself is never stored."""
    normal = PLATE_NOISE.sub("", plate).upper()
    return hmac.new(key.encode(), normal.encode(), hashlib.sha256).digest()


def redact(payload: bytes | str) -> str:
    """The payload with anything that may be a plate blanked (for ``rejected_messages``)."""
    raw = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # not JSON: nothing can be trusted to be or not be a plate, keep only the length
        return f"<{len(raw)} characters, not JSON, not kept: it may hold a plate>"
    return orjson.dumps(_blank(body)).decode()


def redact_item(item: Any) -> str:
    """One decoded passage object, plates blanked, as stored text."""
    return orjson.dumps(_blank(item)).decode()


def _blank(value: Any) -> Any:
    """Keeps the fields that cannot hold a plate; anything else (``plate``, unknown fields,
    nested values) may be one and is blanked."""
    if isinstance(value, list):
        return [_blank(v) for v in value]
    if isinstance(value, dict):
        return {k: (v if k in SAFE_FIELDS and isinstance(v, str | int | float | bool) else "<redacted>")
                for k, v in value.items()}
    return "<redacted>"


def check_facility(facility: FacilityInfo | None, *, facility_id: str, operator_id: str) -> FacilityInfo:
    if facility is None:
        raise Rejected("unknown_facility", f"no facility {facility_id!r}")
    if facility.operator_id != operator_id:
        raise Rejected("wrong_operator", f"facility {facility_id!r} belongs to another operator")
    if not facility.counted:
        raise Rejected("not_counted", f"facility {facility_id!r} does not count at the gate")
    return facility


def decode(payload: bytes, *, allow_list: bool) -> list[Any]:
    """The passage objects of a payload (a list only where ``allow_list``)."""
    if len(payload) > (MAX_PASSAGE_BYTES * MAX_LIST if allow_list else MAX_PASSAGE_BYTES):
        raise Rejected("payload_too_large", f"{len(payload)} bytes")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected("bad_json", str(exc)[:200]) from None
    if isinstance(body, list) and allow_list:
        if not 0 < len(body) <= MAX_LIST:
            raise Rejected("invalid_field", f"a list of 1 to {MAX_LIST} passages")
        return body
    if not isinstance(body, dict):
        raise Rejected("bad_json", "a passage is a JSON object" + (" (or a list of them)" if allow_list else ""))
    return [body]


def validate(body: Any, *, facility_id: str, now: datetime, max_clock_skew_s: float, plate_key: str,
             source: str = "mqtt") -> PassageIn:
    """One passage object → :class:`PassageIn`, or :class:`Rejected`."""
    if not isinstance(body, dict):
        raise Rejected("bad_json", "a passage is a JSON object")
    if unknown := sorted(set(body) - FIELDS):
        raise Rejected("invalid_field", f"unknown field {unknown[0]!r}")
    void_of = _id(body, "void_of")
    direction = body.get("direction")
    if direction not in ("in", "out") and not (direction is None and void_of):
        raise Rejected("invalid_field", "direction must be 'in' or 'out' (it may be left out only with void_of)")
    observed_at = parse_observed_at(body.get("observed_at"), now, max_clock_skew_s)
    lane = _text(body, "lane", 50)
    plate = _text(body, "plate", 20)
    digest = plate_hash(plate, plate_key) if plate else None
    passage_id = _id(body, "passage_id") or _derived_id(direction, observed_at, lane, digest, void_of)
    if void_of == passage_id:
        raise Rejected("invalid_field", "a passage cannot void itself")
    return PassageIn(facility_id, passage_id, direction, observed_at, lane, digest, void_of, source)


def _derived_id(direction: Any, at: datetime, lane: str | None, digest: bytes | None, void_of: str | None) -> str:
    key = "|".join((str(direction), at.isoformat(), lane or "", digest.hex() if digest else "", void_of or ""))
    return "auto-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _id(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not ID.match(value):
        raise Rejected("invalid_field", f"{name} must be 1 to 100 letters, digits or _.:@-")
    return value


def _text(body: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value.strip()) <= limit:
        raise Rejected("invalid_field", f"{name} must be a string of 1 to {limit} characters")
    return value.strip()


