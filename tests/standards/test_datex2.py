"""DATEX II v3.4 publications on the demo district: valid against the official schemas
(DATEXII_3_D2Payload.xsd with xmlschema), numbers that agree with /v1/facilities, and
conditional GET."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PRK = "{http://datex2.eu/schema/3/parking}"
FAC = "{http://datex2.eu/schema/3/facilities}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}type"


@pytest.fixture
async def live(db: AsyncSession) -> None:
    await db.execute(text(
        "UPDATE space_state SET occupied = (random() < 0.5), observed_at = now(), since = now(), last_seen = now()"))


@pytest.mark.parametrize("path", ["/datex2/v3/parking-table", "/datex2/v3/parking-status"])
async def test_publications_are_valid(client: httpx.AsyncClient, live: None, datex_schema: Any, path: str) -> None:
    """With every space too (the documents without spaces are the same less those elements)."""
    r = await client.get(path, params={"spaces": "true"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    errors = list(datex_schema.iter_errors(r.text))
    assert not errors, str(errors[0])[:2000]
    root = ET.fromstring(r.content)
    assert root.tag == "{http://datex2.eu/schema/3/d2Payload}payload"
    kind = "prk:ParkingTablePublication" if path.endswith("table") else "prk:ParkingStatusPublication"
    assert root.get(XSI) == kind


async def test_status_numbers_match_the_facilities(client: httpx.AsyncClient, live: None, db: AsyncSession) -> None:
    facilities = {f["id"]: f for f in (await client.get(
        "/v1/facilities", params={"lat": 41.112, "lon": 122.997, "radius_m": 5000, "limit": 100})).json()}
    root = ET.fromstring((await client.get("/datex2/v3/parking-status", params={"spaces": "true"})).content)
    places = spaces = 0
    for node in root.iter(f"{PRK}parkingStatusInformation"):
        ref = node.find(f"{FAC}reference")
        assert ref is not None
        if node.get(XSI) == "prk:PlaceStatus":
            places += 1
            item = facilities[ref.get("id")]
            vacant = node.find(f"{PRK}occupancy/{PRK}numberOfVacantSpaces")
            if item["status"] in ("closed", "unknown"):
                assert vacant is None
            else:
                assert vacant is not None
                assert int(vacant.text or "") == item["free"]
        else:
            spaces += 1
    fresh = (await db.execute(text("SELECT count(*) FROM space_state WHERE occupied IS NOT NULL"))).scalar_one()
    assert places == len(facilities)
    assert spaces == fresh
    table = ET.fromstring((await client.get("/datex2/v3/parking-table")).content)
    supply = {p.get("id"): int(p.findtext(f"{PRK}supply/{PRK}quantity") or "-1")
              for p in table.iter(f"{PRK}hierarchyElementGeneral")}
    assert supply == {k: v["total"] for k, v in facilities.items()}


async def test_conditional_get(client: httpx.AsyncClient, live: None, db: AsyncSession) -> None:
    first = await client.get("/datex2/v3/parking-status")
    etag = first.headers["etag"]
    again = await client.get("/datex2/v3/parking-status", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert not again.content
    await db.execute(text("UPDATE space_state SET occupied = NOT occupied WHERE space_id LIKE 's219-%'"))
    changed = await client.get("/datex2/v3/parking-status", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    table = await client.get("/datex2/v3/parking-table")
    assert (await client.get("/datex2/v3/parking-table",
                             headers={"If-None-Match": table.headers["etag"]})).status_code == 304
