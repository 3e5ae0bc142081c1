"""Export formats: RFC 7946 GeoJSON and FIWARE Smart Data Models (OffStreet/OnStreetParking)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from shapely.geometry import mapping, shape
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api.conftest import facility_spaces, set_count, set_spaces

FIWARE_DIR = Path(__file__).resolve().parents[3] / "shared" / "standards" / "fiware-parking"  # ../shared
COMMON_URL = "https://smart-data-models.github.io/data-models/common-schema.json"
ALL = {"lat": 41.112, "lon": 122.997, "radius_m": 5000, "limit": 500}


def _geometry(kind: str, coordinates: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["type", "coordinates"],
            "properties": {"type": {"enum": [kind]}, "coordinates": coordinates}}


_POS = {"type": "array", "minItems": 2, "items": {"type": "number"}}
_LINE = {"type": "array", "minItems": 2, "items": _POS}
_RING = {"type": "array", "minItems": 4, "items": _POS}
# The two definitions of the Smart Data Models common schema that the parking schemas use
# (GSMA-Commons, Location-Commons), restated here so the test runs offline.
COMMON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": COMMON_URL,
    "definitions": {
        "EntityIdentifierType": {"anyOf": [
            {"type": "string", "minLength": 1, "maxLength": 256,
             "pattern": "^[\\w\\-\\.\\{\\}\\$\\+\\*\\[\\]`|~^@!,:\\\\]+$"},
            {"type": "string", "format": "uri"}]},
        "GSMA-Commons": {"type": "object", "properties": {
            "id": {"$ref": "#/definitions/EntityIdentifierType"},
            "dateCreated": {"type": "string", "format": "date-time"},
            "dateModified": {"type": "string", "format": "date-time"},
            "source": {"type": "string"}, "name": {"type": "string"},
            "alternateName": {"type": "string"}, "description": {"type": "string"},
            "dataProvider": {"type": "string"},
            "owner": {"type": "array", "items": {"$ref": "#/definitions/EntityIdentifierType"}},
        }},
        "Location-Commons": {"type": "object", "properties": {
            "location": {"oneOf": [
                _geometry("Point", _POS), _geometry("LineString", _LINE),
                _geometry("Polygon", {"type": "array", "items": _RING}),
                _geometry("MultiPoint", {"type": "array", "items": _POS}),
                _geometry("MultiLineString", {"type": "array", "items": _LINE}),
                _geometry("MultiPolygon", {"type": "array", "items": {"type": "array", "items": _RING}}),
            ]},
            "address": {"type": "object"}, "areaServed": {"type": "string"},
        }},
    },
}


def fiware_validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((FIWARE_DIR / f"{name}.schema.json").read_text())
    registry = Registry().with_resource(COMMON_URL, Resource.from_contents(COMMON_SCHEMA))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def assert_rfc7946(doc: dict[str, Any]) -> None:
    """Structure of RFC 7946 §3, positions in range with ≤ 7 decimals, valid geometries that
    survive a shapely round trip, exterior rings counter-clockwise (§3.1.6)."""
    assert doc["type"] == "FeatureCollection"
    assert isinstance(doc["features"], list)
    assert "crs" not in doc
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        assert set(feature) <= {"type", "id", "geometry", "properties", "bbox"}
        assert isinstance(feature.get("id"), str | int)
        assert isinstance(feature["properties"], dict)
        geom = shape(feature["geometry"])
        assert geom.is_valid, feature["id"]
        assert not geom.is_empty, feature["id"]
        assert json.loads(json.dumps(mapping(geom))) == {**feature["geometry"], "coordinates": _lists(
            feature["geometry"]["coordinates"])}
        for lon, lat in _positions(feature["geometry"]["coordinates"]):
            assert -180 <= lon <= 180
            assert -90 <= lat <= 90
            assert all(-Decimal(str(v)).as_tuple().exponent <= 7 for v in (lon, lat))
        if geom.geom_type == "Polygon":
            assert geom.exterior.is_ccw
            assert all(not ring.is_ccw for ring in geom.interiors)


def _lists(coords: Any) -> Any:
    return [_lists(c) for c in coords] if isinstance(coords, list | tuple) else coords


def _positions(coords: Any) -> list[tuple[float, float]]:
    if isinstance(coords[0], int | float):
        return [(coords[0], coords[1])]
    return [p for c in coords for p in _positions(c)]


async def test_geojson_is_rfc7946(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await set_spaces(db, await facility_spaces(db, "zqgc-lot"), occupied=False)
    response = await client.get("/v1/facilities", params={**ALL, "format": "geojson"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    doc = response.json()
    assert_rfc7946(doc)
    kinds = {f["properties"]["kind"]: f["geometry"]["type"] for f in doc["features"]}
    assert kinds == {"lot": "Polygon", "garage": "Polygon", "curb": "LineString"}
    plain = (await client.get("/v1/facilities", params=ALL)).json()
    assert [f["id"] for f in doc["features"]] == [f["id"] for f in plain]
    zq = next(f for f in doc["features"] if f["id"] == "zqgc-lot")
    assert zq["properties"]["free"] == 220
    assert zq["properties"]["distance_m"] > 0


def test_rfc7946_check_can_fail() -> None:
    clockwise = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}
    bad = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "x", "geometry": clockwise, "properties": {}}]}
    with pytest.raises(AssertionError):
        assert_rfc7946(bad)


async def test_fiware_export_validates_against_the_parking_schemas(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await set_spaces(db, await facility_spaces(db, "s219-00"), occupied=False)
    await set_count(db, "cqgc-garage", free=120)
    response = await client.get("/v1/facilities", params={**ALL, "format": "fiware"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json"
    entities = response.json()
    validators = {n: fiware_validator(n) for n in ("OffStreetParking", "OnStreetParking")}
    for entity in entities:
        validators[entity["type"]].validate(entity)
    by_id = {e["id"]: e for e in entities}
    garage = by_id["urn:ngsi-ld:OffStreetParking:cqgc-garage"]
    assert (garage["availableSpotNumber"], garage["totalSpotNumber"]) == (120, 300)
    assert garage["status"] == ["open", "spacesAvailable"]
    assert "parkingGarage" in garage["category"]
    curb = by_id["urn:ngsi-ld:OnStreetParking:s219-00"]
    assert (curb["availableSpotNumber"], curb["location"]["type"]) == (40, "LineString")
    assert {e["type"] for e in entities} == {"OffStreetParking", "OnStreetParking"}


def test_fiware_validation_can_fail() -> None:
    validator = fiware_validator("OffStreetParking")
    good = {"id": "urn:ngsi-ld:OffStreetParking:x", "type": "OffStreetParking",
            "location": {"type": "Point", "coordinates": [122.99, 41.11]}}
    validator.validate(good)
    for broken in ({**good, "status": ["unknown"]}, {**good, "totalSpotNumber": 0},
                   {**good, "location": {"type": "Point"}}, {k: v for k, v in good.items() if k != "location"}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(broken)
