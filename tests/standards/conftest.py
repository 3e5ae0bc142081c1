"""Fixtures of the standards tests: the official schemas (../shared/standards/, next to the
repository root, as CI lays it out), resolved offline, and the NGSI-LD client helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import xmlschema
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
STANDARDS = ROOT.parent / "shared" / "standards"
COMMON = ROOT / "app" / "standards" / "schemas" / "common-schema.json"
ENTITY_TYPES = ("OffStreetParking", "OnStreetParking", "ParkingGroup", "ParkingSpot")
NGSI = "/ngsi-ld/v1/entities"


def fiware_validator(name: str) -> Any:
    """The Smart Data Models schema of ``name``, its common-schema $refs served from our local copy."""
    schema = json.loads((STANDARDS / "fiware-parking" / f"{name}.schema.json").read_text())
    common = json.loads(COMMON.read_text())
    registry: Registry[Any] = Registry().with_resource(common["$id"], Resource.from_contents(common))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="session")
def validators() -> dict[str, Any]:
    return {name: fiware_validator(name) for name in ENTITY_TYPES}


@pytest.fixture(scope="session")
def datex_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(STANDARDS / "datex2-v3.4" / "DATEXII_3_D2Payload.xsd"))


def key_values_of(normalized: dict[str, Any]) -> dict[str, Any]:
    """Normalized → key-values, written independently of app.standards' renderer."""
    out: dict[str, Any] = {}
    for key, value in normalized.items():
        if key in ("id", "type", "@context"):
            out[key] = value
        elif value["type"] == "Relationship":
            out[key] = value["object"]
        else:
            out[key] = value["value"]
    return out


@pytest.fixture
async def client(db_settings: Any, db: Any) -> Any:
    """The app in the test's rolled-back transaction, spot queries answered by PostGIS: these tests
    write live state the free-space index (which follows committed state) cannot see; the index's
    answers are compared with PostGIS's in test_ngsi_index.py."""
    from tests.conftest import app_client

    async with app_client(db_settings.model_copy(update={"ngsi_index": False}), db) as c:
        yield c
