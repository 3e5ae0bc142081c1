"""FIWARE Smart Data Models export of facilities: NGSI-LD entities in key-values form.

Lots and garages become ``OffStreetParking``, curb segments ``OnStreetParking``
(``../shared/standards/fiware-parking/``); the test suite validates the output against those
JSON schemas. Our ``unknown`` status has no FIWARE value: such a facility is exported as
``open`` without ``availableSpotNumber``.
"""

from __future__ import annotations

from typing import Any

from app.availability.service import FacilityAvailability
from app.core.times import iso_utc

CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
]
MEDIA_TYPE = "application/ld+json"
STATUS = {
    "spacesAvailable": ["open", "spacesAvailable"],
    "almostFull": ["open", "almostFull"],
    "full": ["open", "full"],
    "closed": ["closed"],
    "unknown": ["open"],
}


def entity_type(kind: str) -> str:
    return "OnStreetParking" if kind == "curb" else "OffStreetParking"


def entity_id(item: FacilityAvailability) -> str:
    return f"urn:ngsi-ld:{entity_type(item.kind)}:{item.id}"


def entity(item: FacilityAvailability) -> dict[str, Any]:
    """One facility as an NGSI-LD key-values entity of the FIWARE parking data model."""
    off_street = item.kind != "curb"
    body: dict[str, Any] = {
        "id": entity_id(item), "type": entity_type(item.kind), "name": item.name,
        "location": item.geometry, "owner": [f"urn:ngsi-ld:Organization:{item.operator_id}"],
        "dataProvider": "citypark", "category": _categories(item),
        "occupancyDetectionType": ["balancing" if item.counted else "singleSpaceDetection"],
        "allowedVehicleType": ["car"],
    }
    body.update(_numbers(item, off_street=off_street))
    if off_street:
        body["status"] = STATUS[item.status]
        body["openingHours"] = item.opening_hours
    if item.observed_at is not None:
        body["observationDateTime"] = iso_utc(item.observed_at)
    body["@context"] = CONTEXT
    return body


def _numbers(item: FacilityAvailability, *, off_street: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if item.total > 0 or not off_street:  # OffStreetParking wants totalSpotNumber >= 1
        out["totalSpotNumber"] = item.total
    if item.free is not None:
        out["availableSpotNumber"] = item.free
        out["occupiedSpotNumber"] = item.total - item.free
        if off_street and item.total:
            out["occupancy"] = round((item.total - item.free) / item.total, 4)
    return out


def _categories(item: FacilityAvailability) -> list[str]:
    if item.kind == "curb":
        found = ["public"]
    else:
        found = ["parkingGarage" if item.kind == "garage" else "parkingLot"]
        found.append("publicPrivate" if item.public_hours else "public")
    if item.fee:
        found.append("feeCharged")
    if item.accessible_total:
        found.append("forDisabled")
    if item.ev_total:
        found.append("forElectricalCharging")
    return found
