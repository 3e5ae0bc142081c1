"""NGSI-LD subscriptions: validated and stored here; delivered by :mod:`notifier`.

A subscription names what to watch (``entities`` by type and optionally id / idPattern,
``watchedAttributes``, ``q``, ``geoQ``), where to send (``notification.endpoint.uri``, checked by
:mod:`ssrf`), how (``notification.format`` normalized or keyValues, ``notification.attributes``,
``endpoint.accept``), how often at most (``throttling`` seconds) and until when (``expiresAt``).
Operator keys see and delete their own operator's subscriptions; admin keys all of them.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.core.times import iso_utc
from app.keys.service import Principal
from app.standards.models import NgsiSubscription
from app.standards.ngsi_ld import geo, query, ssrf
from app.standards.ngsi_ld.entities import TYPES
from app.standards.ngsi_ld.errors import AlreadyExists, BadRequestData, ResourceNotFound
from app.standards.ngsi_ld.service import TYPE_PREFIXES

_FACILITY = {"name", "location", "owner", "dataProvider", "category", "occupancyDetectionType",
             "allowedVehicleType", "totalSpotNumber", "availableSpotNumber", "occupiedSpotNumber", "occupancy",
             "status", "openingHours", "observationDateTime"}
ATTRIBUTES: dict[str, set[str]] = {
    "OffStreetParking": _FACILITY,
    "OnStreetParking": _FACILITY - {"status", "openingHours"},
    "ParkingGroup": {"name", "category", "refParkingSite", "location", "allowedVehicleType", "totalSpotNumber",
                     "availableSpotNumber", "occupancyDetectionType", "owner", "dataProvider",
                     "observationDateTime"},
    "ParkingSpot": {"name", "status", "category", "refParkingSite", "location", "owner", "dataProvider",
                    "refDevice", "timeInstant"},
}
FORMATS = ("normalized", "keyValues")
ACCEPTS = ("application/json", "application/ld+json")
MAX_PER_OWNER = 5000
MAX_THROTTLING_S = 86_400


async def create(session: AsyncSession, *, settings: Settings, principal: Principal, body: Any) -> str:
    """Validate and store a subscription; its id. BadRequestData / InvalidRequest if it is wrong."""
    spec = await validate(body, allow=ssrf.AllowList.parse(settings.notify_allow))
    owned = await session.scalar(select(func.count()).select_from(NgsiSubscription)
                                 .where(NgsiSubscription.owner_key_id == _owner(principal)))
    if (owned or 0) >= MAX_PER_OWNER:
        raise BadRequestData(f"at most {MAX_PER_OWNER} subscriptions per operator")
    sub_id = spec.pop("id", None) or f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
    if await session.get(NgsiSubscription, sub_id) is not None:
        raise AlreadyExists(f"subscription {sub_id} exists")
    session.add(NgsiSubscription(
        id=sub_id, owner_key_id=_owner(principal), owner_operator_id=principal.operator_id, spec=spec,
        entity_types=_types(spec), watched_attributes=spec.get("watchedAttributes"),
        endpoint_uri=spec["notification"]["endpoint"]["uri"], throttling_s=int(spec.get("throttling", 0)),
        expires_at=_parse_time(spec["expiresAt"]) if "expiresAt" in spec else None,
        status="active" if spec.get("isActive", True) else "paused"))
    await session.flush()
    return sub_id


async def validate(body: Any, *, allow: ssrf.AllowList) -> dict[str, Any]:
    """The subscription to store (NGSI-LD terms), or BadRequestData naming what is wrong."""
    if not isinstance(body, dict):
        raise BadRequestData("a subscription is a JSON object")
    if body.get("type") != "Subscription":
        raise BadRequestData('type must be "Subscription"')
    spec: dict[str, Any] = {"type": "Subscription"}
    if "id" in body:
        sub_id = body["id"]
        if not isinstance(sub_id, str) or len(sub_id) > 256 or not re.match(r"^[a-zA-Z][\w+.-]*:\S+$", sub_id):
            raise BadRequestData("id must be a URI")
        spec["id"] = body["id"]
    for text in ("subscriptionName", "description"):
        if text in body:
            spec[text] = _string(body[text], text, 500)
    if "entities" not in body and "watchedAttributes" not in body:
        raise BadRequestData("a subscription needs entities or watchedAttributes")
    if "entities" in body:
        spec["entities"] = _entities(body["entities"])
    if "watchedAttributes" in body:
        spec["watchedAttributes"] = _names(body["watchedAttributes"], "watchedAttributes")
    if "q" in body:
        query.parse(_string(body["q"], "q", query.MAX_LENGTH))
        spec["q"] = body["q"]
    if "geoQ" in body:
        geo.from_geoq(body["geoQ"])
        spec["geoQ"] = {k: body["geoQ"][k] for k in ("georel", "geometry", "coordinates")}
    spec["notification"] = await _notification(body.get("notification"), allow)
    if "throttling" in body:
        throttling = body["throttling"]
        number = isinstance(throttling, int | float) and not isinstance(throttling, bool)
        if not number or not 0 <= throttling <= MAX_THROTTLING_S:
            raise BadRequestData(f"throttling is seconds, 0 to {MAX_THROTTLING_S}")
        spec["throttling"] = int(throttling)
    if "expiresAt" in body:
        expires = _parse_time(_string(body["expiresAt"], "expiresAt", 64))
        if expires <= datetime.now(UTC):
            raise BadRequestData("expiresAt is in the past")
        spec["expiresAt"] = iso_utc(expires)
    if "isActive" in body:
        if not isinstance(body["isActive"], bool):
            raise BadRequestData("isActive is true or false")
        spec["isActive"] = body["isActive"]
    return spec


def _entities(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value or len(value) > 100:
        raise BadRequestData("entities is a list of 1 to 100 selectors")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise BadRequestData("each entities item needs a type")
        name = item["type"]
        for prefix in TYPE_PREFIXES:
            name = name.removeprefix(prefix)
        selector = {"type": name}
        if "id" in item:
            selector["id"] = _string(item["id"], "entities.id", 256)
        if "idPattern" in item:
            pattern = _string(item["idPattern"], "entities.idPattern", 256)
            try:
                re.compile(pattern)
            except re.error as exc:
                raise BadRequestData(f"entities.idPattern: {exc}") from None
            selector["idPattern"] = pattern
        out.append(selector)
    return out


async def _notification(value: Any, allow: ssrf.AllowList) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("endpoint"), dict):
        raise BadRequestData("notification.endpoint is required")
    endpoint = value["endpoint"]
    uri = _string(endpoint.get("uri"), "notification.endpoint.uri", 2000)
    try:
        await ssrf.check(uri, allow)
    except ssrf.EndpointRefused as exc:
        raise BadRequestData(str(exc)) from None
    accept = endpoint.get("accept", "application/json")
    if accept not in ACCEPTS:
        raise BadRequestData(f"notification.endpoint.accept must be one of {', '.join(ACCEPTS)}")
    out: dict[str, Any] = {"endpoint": {"uri": uri, "accept": accept}, "format": value.get("format", "normalized")}
    if out["format"] not in FORMATS:
        raise BadRequestData("notification.format must be normalized or keyValues")
    if "attributes" in value:
        out["attributes"] = _names(value["attributes"], "notification.attributes")
    return out


def _names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > 50 or not all(
            isinstance(v, str) and 0 < len(v) <= 256 for v in value):
        raise BadRequestData(f"{what} is a list of 1 to 50 attribute names")
    return [query._short(v) for v in value]


def _string(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequestData(f"{what} must be a text of at most {limit} characters")
    return value


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestData(f"{text!r} is not an RFC 3339 date-time") from None
    if value.tzinfo is None:
        raise BadRequestData(f"{text!r} has no time zone offset")
    return value.astimezone(UTC)


def _types(spec: dict[str, Any]) -> list[str]:
    if "entities" in spec:
        return sorted({e["type"] for e in spec["entities"]})
    return [t for t in TYPES if ATTRIBUTES[t] & set(spec["watchedAttributes"])]


def _owner(principal: Principal) -> str:
    """Subscriptions belong to the operator (any of its keys), or to the admins."""
    if principal.role == "admin":
        return "admin"
    return principal.operator_id or str(principal.key_id)


# --- reading ------------------------------------------------------------------------------------


def public(row: NgsiSubscription, *, now: datetime | None = None) -> dict[str, Any]:
    """The subscription as NGSI-LD shows it, with its delivery record."""
    now = now or datetime.now(UTC)
    body = {"id": row.id, **row.spec}
    status = row.status
    if row.expires_at is not None and row.expires_at <= now:
        status = "expired"
    body["status"] = status
    body["isActive"] = status == "active"
    notification: dict[str, Any] = dict(row.spec["notification"])  # type: ignore[call-overload]
    notification["timesSent"] = row.times_sent
    notification["timesFailed"] = row.times_failed
    for name, value in (("lastNotification", row.last_notification), ("lastSuccess", row.last_success),
                        ("lastFailure", row.last_failure)):
        if value is not None:
            notification[name] = iso_utc(value)
    if row.last_failure_reason and row.last_failure is not None:
        notification["lastFailureReason"] = row.last_failure_reason
    if row.times_sent or row.times_failed:
        failed = row.last_failure is not None and (row.last_success is None or row.last_failure > row.last_success)
        notification["status"] = "failed" if failed else "ok"
    body["notification"] = notification
    body["createdAt"], body["modifiedAt"] = iso_utc(row.created_at), iso_utc(row.modified_at)
    return body


def _visible(principal: Principal) -> Any:
    if principal.role == "admin":
        return True
    return NgsiSubscription.owner_key_id == _owner(principal)


async def list_for(session: AsyncSession, *, principal: Principal, offset: int, limit: int
                   ) -> tuple[list[dict[str, Any]], int]:
    where = _visible(principal)
    total = await session.scalar(select(func.count()).select_from(NgsiSubscription).where(where))
    rows = await session.scalars(select(NgsiSubscription).where(where).order_by(NgsiSubscription.id)
                                 .offset(offset).limit(limit))
    now = datetime.now(UTC)
    return [public(r, now=now) for r in rows], int(total or 0)


async def _one(session: AsyncSession, *, principal: Principal, subscription_id: str) -> NgsiSubscription:
    row = await session.get(NgsiSubscription, subscription_id)
    if row is None or (principal.role != "admin" and row.owner_key_id != _owner(principal)):
        raise ResourceNotFound(f"no subscription {subscription_id}")
    return row


async def get(session: AsyncSession, *, principal: Principal, subscription_id: str) -> dict[str, Any]:
    return public(await _one(session, principal=principal, subscription_id=subscription_id))


async def delete(session: AsyncSession, *, principal: Principal, subscription_id: str) -> None:
    await session.delete(await _one(session, principal=principal, subscription_id=subscription_id))
    await session.flush()
