"""DATEX II v3.4 (Parking namespace) documents from citypark's inventory and live state.

- ``ParkingTablePublication``: one ``prk:parkingTable`` whose hierarchy elements are the
  facilities as ``prk:Place`` (name, entrance as a point location, operator, opening hours and
  fee as text, supply = capacity) and, on request, their spaces as ``prk:Space`` children.
- ``ParkingStatusPublication``: per facility a ``prk:PlaceStatus`` (opening status, vacant and
  occupied spaces, occupancy %, FIWARE-style status, ``lastUpdated``) and, on request, a
  ``prk:SpaceStatus`` per space with a fresh reading.

Both are a D2 ``payload`` root (``xsi:type`` names the publication), valid against
``../shared/standards/datex2-v3.4/DATEXII_3_D2Payload.xsd`` (the tests check it with xmlschema).
``etag`` is a digest of the document without its publication time, so it changes only when
the content does.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.availability import service as availability
from app.availability.service import FacilityAvailability
from app.core.settings import Settings
from app.core.times import iso_utc
from app.occupancy.staleness import status_sql

NS = {
    "d2": "http://datex2.eu/schema/3/d2Payload", "com": "http://datex2.eu/schema/3/common",
    "prk": "http://datex2.eu/schema/3/parking", "fac": "http://datex2.eu/schema/3/facilities",
    "loc": "http://datex2.eu/schema/3/locationReferencing", "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)
MEDIA_TYPE = "application/xml"
TABLE_ID = "citypark"
COUNTRY = "cn"
LANG = "zh"
XSI_TYPE = f"{{{NS['xsi']}}}type"
PLACE_STATUS = {"spacesAvailable": "spacesAvailable", "almostFull": "almostFull", "full": "full",
                "closed": None, "unknown": "unknown"}


@dataclass(frozen=True)
class Document:
    body: bytes
    etag: str


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def _el(parent: ET.Element, name: str, value: Any = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, _q(name), {(_q(k) if ":" in k else k): v for k, v in attrs.items()})
    if value is not None:
        child.text = str(value)
    return child


def _text(parent: ET.Element, name: str, value: str) -> None:
    """A com:MultilingualString."""
    values = _el(_el(parent, name), "com:values")
    _el(values, "com:value", value, lang=LANG)


def _payload(kind: str, operator: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element(_q("d2:payload"), {XSI_TYPE: f"prk:{kind}", "lang": LANG, "modelBaseVersion": "3"})
    published = _el(root, "com:publicationTime", "__PUBLICATION_TIME__")
    creator = _el(root, "com:publicationCreator")
    _el(creator, "com:country", COUNTRY)
    _el(creator, "com:nationalIdentifier", operator)
    return root, published


def _finish(root: ET.Element, published: ET.Element) -> Document:
    skeleton = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    etag = 'W/"' + hashlib.sha256(skeleton).hexdigest()[:32] + '"'
    published.text = iso_utc(datetime.now(UTC))
    return Document(ET.tostring(root, encoding="utf-8", xml_declaration=True), etag)


# --- the table ----------------------------------------------------------------------------------


async def parking_table(session: AsyncSession, *, settings: Settings, spaces: bool = False) -> Document:
    """The ParkingTablePublication of every facility (and, with ``spaces``, every space)."""
    snap = await availability.snapshot(session, now=datetime.now(UTC), stale_after_s=settings.stale_after_s,
                                       timezone=settings.timezone)
    operators: dict[str, str] = {r[0]: r[1] for r in await session.execute(text("SELECT id, name FROM operators"))}
    updated: dict[str, datetime] = {
        r[0]: r[1] for r in await session.execute(text("SELECT id, updated_at FROM facilities"))}
    members = await _spaces(session, settings=settings) if spaces else {}
    version_time = max(updated.values(), default=datetime(2026, 1, 1, tzinfo=UTC))
    root, published = _payload("ParkingTablePublication", TABLE_ID)
    header = _el(root, "prk:headerInformation")
    _el(header, "com:informationStatus", "real")
    table = _el(root, "prk:parkingTable", id=TABLE_ID, version=_version(version_time))
    _text(table, "prk:name", "citypark")
    _el(table, "prk:versionTime", iso_utc(version_time))
    for item in snap.items:
        _place(table, item, operators.get(item.operator_id, item.operator_id), updated.get(item.id), members)
        for space in members.get(item.id, []):
            _space(table, item, space)
    return _finish(root, published)


def _place(table: ET.Element, item: FacilityAvailability, operator: str, updated: datetime | None,
           members: dict[str, list[dict[str, Any]]]) -> None:
    place = _el(table, "prk:hierarchyElementGeneral", id=item.id, version=_version(updated),
                **{"xsi:type": "prk:Place"})
    _text(place, "fac:name", item.name)
    if updated is not None:
        _el(place, "fac:lastUpdated", iso_utc(updated))
    notes = [f"opening hours (OSM): {item.opening_hours}"]
    if item.public_hours:
        notes.append(f"open to the public (OSM): {item.public_hours}")
    notes.append({"lot": "parking lot", "garage": "parking garage", "curb": "on-street parking"}[item.kind])
    _text(place, "fac:description", "; ".join(notes))
    if item.opening_hours.strip() == "Mo-Su 00:00-24:00" and not item.public_hours:
        _el(place, "fac:operatingHours", **{"xsi:type": "fac:OpenAllHours"})
    _point(place, "fac:locationReference", item.lat, item.lon)
    org = _el(place, "fac:operator", id=item.operator_id, version="1", **{"xsi:type": "fac:OrganisationSpecification"})
    _text(org, "fac:name", operator)
    _el(org, "fac:organisationUnit")
    if item.fee:
        rates = _el(place, "fac:rates", id=f"{item.id}-rates", version="1", **{"xsi:type": "fac:RateTable"})
        _text(rates, "fac:rateTableName", item.fee)
    _el(place, "prk:layer", 0)
    _el(place, "prk:type", "place")
    for space in members.get(item.id, []):
        _el(place, "prk:childId", id=space["id"], version="1", targetClass="fac:FacilityObject")
    supply = _el(place, "prk:supply")
    _el(supply, "prk:quantity", item.total)
    _el(supply, "prk:viewType", "spaceView")


def _space(table: ET.Element, item: FacilityAvailability, space: dict[str, Any]) -> None:
    node = _el(table, "prk:hierarchyElementGeneral", id=space["id"], version="1", **{"xsi:type": "prk:Space"})
    _point(node, "fac:locationReference", space["lat"], space["lon"])
    _el(node, "prk:layer", 1)
    _el(node, "prk:type", "space")
    _el(node, "prk:parentId", id=item.id, version="1", targetClass="fac:FacilityObject")


def _point(parent: ET.Element, name: str, lat: float, lon: float) -> None:
    location = _el(parent, name, **{"xsi:type": "loc:PointLocation"})
    coordinates = _el(_el(location, "loc:pointByCoordinates"), "loc:pointCoordinates")
    _el(coordinates, "loc:latitude", round(lat, 7))
    _el(coordinates, "loc:longitude", round(lon, 7))


# --- the status ---------------------------------------------------------------------------------


async def parking_status(session: AsyncSession, *, settings: Settings, spaces: bool = False) -> Document:
    """The ParkingStatusPublication: every facility's status (and, with ``spaces``, each known space's)."""
    snap = await availability.snapshot(session, now=datetime.now(UTC), stale_after_s=settings.stale_after_s,
                                       timezone=settings.timezone)
    members = await _spaces(session, settings=settings) if spaces else {}
    root, published = _payload("ParkingStatusPublication", TABLE_ID)
    _el(root, "prk:parkingTableReference", id=TABLE_ID, targetClass="prk:ParkingTable")
    header = _el(root, "prk:headerInformation")
    _el(header, "com:informationStatus", "real")
    for item in snap.items:
        _place_status(root, item)
        for space in members.get(item.id, []):
            if space["status"] in ("free", "occupied"):
                _space_status(root, space)
    return _finish(root, published)


def _place_status(root: ET.Element, item: FacilityAvailability) -> None:
    node = _el(root, "prk:parkingStatusInformation", **{"xsi:type": "prk:PlaceStatus"})
    _el(node, "fac:reference", id=item.id, version="1", targetClass="fac:FacilityObject")
    if item.observed_at is not None:
        _el(node, "fac:lastUpdated", iso_utc(item.observed_at))
    opening = "closed" if item.status == "closed" else "open" if item.open_now else "closed"
    _el(node, "fac:openingStatus", opening)
    if item.free is not None and item.status != "closed":
        occupancy = _el(node, "prk:occupancy")
        _el(occupancy, "prk:numberOfVacantSpaces", item.free)
        _el(occupancy, "prk:numberOfOccupiedSpaces", item.total - item.free)
        if item.total:
            _el(occupancy, "prk:occupancy", round(100 * (item.total - item.free) / item.total, 1))
    supply = _el(node, "prk:supply")
    _el(supply, "prk:quantity", item.total)
    _el(supply, "prk:viewType", "spaceView")
    status = PLACE_STATUS[item.status]
    if status is not None:
        _el(node, "prk:status", status)


def _space_status(root: ET.Element, space: dict[str, Any]) -> None:
    node = _el(root, "prk:parkingStatusInformation", **{"xsi:type": "prk:SpaceStatus"})
    _el(node, "fac:reference", id=space["id"], version="1", targetClass="fac:FacilityObject")
    _el(node, "fac:lastUpdated", iso_utc(space["observed_at"]))
    _el(node, "prk:occupied", "true" if space["status"] == "occupied" else "false")
    _el(node, "prk:measurementOrCalculationTime", iso_utc(space["observed_at"]))


async def _spaces(session: AsyncSession, *, settings: Settings) -> dict[str, list[dict[str, Any]]]:
    rows = await session.execute(text(
        f"SELECT sp.id, sp.facility_id, ST_Y(sp.geom) AS lat, ST_X(sp.geom) AS lon, st.observed_at, "
        f"{status_sql('st', ':stale')} AS status FROM spaces sp LEFT JOIN space_state st ON st.space_id = sp.id "
        "ORDER BY sp.facility_id, sp.id"), {"stale": float(settings.stale_after_s)})
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows.mappings():
        out.setdefault(row["facility_id"], []).append(dict(row))
    return out


def _version(at: datetime | None) -> str:
    return str(int(at.timestamp())) if at is not None else "1"
