"""RFC 7946 GeoJSON output for every list of places (``?format=geojson``).

Reusable by any route:

- ``feature_collection(rows, id_key="id", lon_key="lon", lat_key="lat", geometry_key=None)``
  turns mappings into a FeatureCollection; each row's other keys become ``properties``; the
  geometry is ``row[geometry_key]`` (a GeoJSON geometry dict) or a Point at (lon, lat).
- ``GeoJSONResponse(content)`` serves it as ``application/geo+json``.
- ``geojson_content()`` is the OpenAPI ``content`` entry for ``responses=``, so the
  documented schema matches what is served.

RFC 7946 rules kept here: positions are [lon, lat] with at most 7 decimals (about 1 cm), no
``crs`` member; polygon rings must already be counter-clockwise (PostGIS
``ST_ForcePolygonCCW``), which ``feature_collection`` does not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson
from fastapi.responses import Response

from app.core.errors import InvalidInput

MEDIA_TYPE = "application/geo+json"
PRECISION = 7
Format = Literal["json", "geojson"]


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(lon, PRECISION), round(lat, PRECISION)]}


def feature(fid: str | int, geometry: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": dict(geometry), "properties": dict(properties)}


def feature_collection(
    rows: Iterable[Mapping[str, Any]], *, id_key: str = "id", lon_key: str = "lon",
    lat_key: str = "lat", geometry_key: str | None = None,
) -> dict[str, Any]:
    """A FeatureCollection of ``rows`` (see the module docstring)."""
    features = []
    for row in rows:
        geometry = row[geometry_key] if geometry_key else point(row[lon_key], row[lat_key])
        props = {k: v for k, v in row.items() if k != geometry_key}
        features.append(feature(row[id_key], geometry, props))
    return {"type": "FeatureCollection", "features": features}


class GeoJSONResponse(Response):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)


GEOMETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"type": "string", "enum": ["Point", "LineString", "Polygon", "MultiPoint",
                                             "MultiLineString", "MultiPolygon"]},
        "coordinates": {"type": "array"},
    },
}
FEATURE_COLLECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": {
            "type": "object",
            "required": ["type", "geometry", "properties"],
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "id": {"type": ["string", "number"]},
                "geometry": GEOMETRY_SCHEMA,
                "properties": {"type": "object"},
            },
        }},
    },
}


def geojson_content() -> dict[str, Any]:
    """The ``content`` entry to merge into a route's documented 200 response."""
    return {MEDIA_TYPE: {"schema": FEATURE_COLLECTION_SCHEMA}}


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` → floats, checked; None stays None."""
    if text is None:
        return None
    try:
        minx, miny, maxx, maxy = (float(part) for part in text.split(","))
    except ValueError:
        raise InvalidInput("bbox: give minlon,minlat,maxlon,maxlat") from None
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise InvalidInput("bbox: need -180 <= minlon < maxlon <= 180 and -90 <= minlat < maxlat <= 90")
    return minx, miny, maxx, maxy
