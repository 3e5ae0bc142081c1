"""Entities out: key-values or normalized, as JSON-LD, JSON (the @context in a Link header) or
GeoJSON; the @context documents citypark serves itself (vendored, never fetched)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

from app.core.times import iso_utc
from app.standards.ngsi_ld.entities import Row
from app.standards.ngsi_ld.errors import BadRequestData, NotAcceptable

CONTEXT_DIR = Path(__file__).resolve().parent / "contexts"
CONTEXT_PATH = "/ngsi-ld/contexts/"
CONTEXTS = ("citypark.jsonld", "parking.jsonld", "ngsi-ld-core-context.jsonld")
JSON, LD, GEO = "application/json", "application/ld+json", "application/geo+json"
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
# attributes that change with the sensors: they carry observedAt in normalized form
LIVE = ("status", "availableSpotNumber", "occupiedSpotNumber", "occupancy")
ALWAYS = ("id", "type")


def context_url(base: str) -> str:
    """The @context of every citypark entity: the parking terms, then the NGSI-LD core."""
    return f"{base.rstrip('/')}{CONTEXT_PATH}citypark.jsonld"


def link_header(base: str) -> str:
    return f'<{context_url(base)}>; {LINK_REL}'


@cache
def _context_file(name: str) -> bytes:
    return (CONTEXT_DIR / name).read_bytes()


def context_document(name: str, base: str) -> bytes | None:
    """A served @context document; None for an unknown name."""
    if name == "citypark.jsonld":
        root = f"{base.rstrip('/')}{CONTEXT_PATH}"
        return orjson.dumps({"@context": [f"{root}parking.jsonld", f"{root}ngsi-ld-core-context.jsonld"]})
    return _context_file(name) if name in CONTEXTS else None


def negotiate(accept: str | None) -> str:
    """The media type to answer in: ld+json, json (default) or geo+json; NotAcceptable else."""
    if not accept:
        return JSON
    offers: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    quality = float(p[2:])
                except ValueError:
                    quality = 0.0
        choice = {"*/*": JSON, "application/*": JSON, JSON: JSON, LD: LD, GEO: GEO}.get(media.lower())
        if choice and quality > 0:
            offers.append((-quality, index, choice))
    if not offers:
        raise NotAcceptable(f"cannot answer in {accept!r}: application/json, application/ld+json or "
                            "application/geo+json")
    return min(offers)[2]


def parse_options(options: str | None, fmt: str | None = None) -> bool:
    """True for key-values (``options=keyValues`` / ``format=simplified``), False for normalized."""
    words = {w.strip() for w in (options or "").split(",") if w.strip()}
    unknown = words - {"keyValues", "simplified", "normalized", "concise", "sysAttrs"}
    if unknown:
        raise BadRequestData(f"options: unknown {', '.join(sorted(unknown))}")
    if fmt is not None and fmt not in ("keyValues", "simplified", "normalized"):
        raise BadRequestData("format must be normalized, keyValues or simplified")
    key_values = bool(words & {"keyValues", "simplified"}) or fmt in ("keyValues", "simplified")
    if key_values and ("normalized" in words or fmt == "normalized"):
        raise BadRequestData("options: keyValues and normalized exclude each other")
    return key_values


def project(kv: dict[str, Any], attrs: frozenset[str] | None) -> dict[str, Any]:
    if attrs is None:
        return kv
    return {k: v for k, v in kv.items() if k in ALWAYS or k in attrs}


def normalized(row: Row, attrs: frozenset[str] | None = None) -> dict[str, Any]:
    """The entity in normalized form: Property / Relationship / GeoProperty, observedAt on live values."""
    observed = iso_utc(row.observed_at) if row.observed_at is not None else None
    out: dict[str, Any] = {}
    for key, value in project(row.kv, attrs).items():
        if key in ALWAYS:
            out[key] = value
        elif key == "location":
            out[key] = {"type": "GeoProperty", "value": value}
        elif key.startswith("ref"):
            out[key] = {"type": "Relationship", "object": value}
        else:
            out[key] = {"type": "Property", "value": value}
            if observed is not None and key in LIVE:
                out[key]["observedAt"] = observed
    return out


def entity_body(row: Row, *, key_values: bool, attrs: frozenset[str] | None) -> dict[str, Any]:
    return dict(project(row.kv, attrs)) if key_values else normalized(row, attrs)


def render_many(rows: list[Row], *, media: str, key_values: bool, attrs: frozenset[str] | None,
                base: str) -> bytes:
    bodies = [entity_body(r, key_values=key_values, attrs=attrs) for r in rows]
    if media == GEO:
        return orjson.dumps({"type": "FeatureCollection", "features": [_feature(b) for b in bodies],
                             "@context": context_url(base)})
    if media == LD:
        for body in bodies:
            body["@context"] = context_url(base)
    return orjson.dumps(bodies)


def render_one(row: Row, *, media: str, key_values: bool, attrs: frozenset[str] | None, base: str) -> bytes:
    body = entity_body(row, key_values=key_values, attrs=attrs)
    if media == GEO:
        return orjson.dumps({**_feature(body), "@context": context_url(base)})
    if media == LD:
        body["@context"] = context_url(base)
    return orjson.dumps(body)


def _feature(body: dict[str, Any]) -> dict[str, Any]:
    location = body.get("location")
    geometry = location.get("value") if isinstance(location, dict) and "value" in location else location
    properties = {k: v for k, v in body.items() if k != "id"}
    return {"id": body["id"], "type": "Feature", "geometry": geometry, "properties": properties}
