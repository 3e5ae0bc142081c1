"""NGSI-LD geo-queries (``georel``, ``geometry``, ``coordinates``; ETSI GS CIM 009 §4.10),
answered by PostGIS: ``near;maxDistance==m`` / ``near;minDistance==m`` in metres on geography
(the spaces' geography GiST index; great-circle metres on the sphere, ``use_spheroid => false``,
the one distance of the whole project, ``matching.geo``, so the in-memory answer of
``spot_index`` and the notifier's agree with it), ``within``, ``contains``, ``intersects``, ``disjoint``,
``equals``, ``overlaps`` on the geometries in SRID 4326."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from app.standards.ngsi_ld.errors import BadRequestData

GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
RELATIONS = ("near", "within", "contains", "intersects", "disjoint", "equals", "overlaps")
MAX_DISTANCE_M = 100_000.0
MAX_POSITIONS = 10_000


@dataclass(frozen=True)
class GeoQuery:
    relation: str
    geometry: dict[str, Any]  # GeoJSON
    max_distance_m: float | None = None
    min_distance_m: float | None = None

    @property
    def point(self) -> tuple[float, float] | None:
        """(lon, lat) of a Point query."""
        if self.geometry["type"] != "Point":
            return None
        lon, lat = self.geometry["coordinates"][:2]
        return float(lon), float(lat)

    def sql(self, column: str, param: int) -> tuple[str, list[Any]]:
        """A WHERE fragment over the SRID 4326 geometry ``column`` and its parameters ($param…)."""
        shape = f"ST_SetSRID(ST_GeomFromGeoJSON(${param}), 4326)"
        geojson = json.dumps(self.geometry)
        if self.relation == "near":
            if self.max_distance_m is not None:
                return (f"ST_DWithin(({column})::geography, ({shape})::geography, ${param + 1}, false)",
                        [geojson, self.max_distance_m])
            return (f"NOT ST_DWithin(({column})::geography, ({shape})::geography, ${param + 1}, false)",
                    [geojson, self.min_distance_m])
        function = {"within": "ST_Within", "contains": "ST_Contains", "intersects": "ST_Intersects",
                    "disjoint": "ST_Disjoint", "equals": "ST_Equals", "overlaps": "ST_Overlaps"}[self.relation]
        return f"{function}({column}, {shape})", [geojson]


def parse(georel: str | None, geometry: str | None, coordinates: str | None,
          geoproperty: str | None = None) -> GeoQuery | None:
    """The geo-query of the request parameters; None without ``georel``; ``BadRequestData`` if bad."""
    if georel is None and geometry is None and coordinates is None:
        return None
    if not (georel and geometry and coordinates):
        raise BadRequestData("a geo-query needs georel, geometry and coordinates together")
    if geoproperty not in (None, "location"):
        raise BadRequestData("geoproperty: only 'location' is a GeoProperty of the parking entities")
    try:
        coords = json.loads(coordinates)
    except ValueError:
        raise BadRequestData("coordinates: not a JSON array") from None
    return build(georel, {"type": geometry, "coordinates": coords})


def from_geoq(geoq: dict[str, Any]) -> GeoQuery:
    """A subscription's ``geoQ`` member ({"georel", "geometry", "coordinates"})."""
    if not isinstance(geoq, dict) or not all(k in geoq for k in ("georel", "geometry", "coordinates")):
        raise BadRequestData("geoQ needs georel, geometry and coordinates")
    coords = geoq["coordinates"]
    if isinstance(coords, str):
        try:
            coords = json.loads(coords)
        except ValueError:
            raise BadRequestData("geoQ.coordinates: not a JSON array") from None
    return build(str(geoq["georel"]), {"type": geoq["geometry"], "coordinates": coords})


def build(georel: str, geometry: dict[str, Any]) -> GeoQuery:
    if geometry["type"] not in GEOMETRIES:
        raise BadRequestData(f"geometry must be one of {', '.join(GEOMETRIES)}")
    _check_positions(geometry["coordinates"], depth=_DEPTH[geometry["type"]])
    polygons = {"Polygon": [geometry["coordinates"]], "MultiPolygon": geometry["coordinates"]}.get(geometry["type"], [])
    for rings in polygons:
        if any(len(ring) < 4 or ring[0] != ring[-1] for ring in rings):
            raise BadRequestData("coordinates: a polygon ring is closed and has at least 4 positions")
    relation, *modifiers = georel.split(";")
    if relation not in RELATIONS:
        raise BadRequestData(f"georel must be one of {', '.join(RELATIONS)}")
    if relation != "near":
        if modifiers:
            raise BadRequestData(f"georel {relation} takes no distance")
        return GeoQuery(relation, geometry)
    if geometry["type"] != "Point":
        raise BadRequestData("georel near needs a Point geometry")
    if len(modifiers) != 1 or "==" not in modifiers[0]:
        raise BadRequestData("georel near needs maxDistance==<metres> or minDistance==<metres>")
    name, _, raw = modifiers[0].partition("==")
    try:
        metres = float(raw)
    except ValueError:
        raise BadRequestData(f"{name}: not a number") from None
    if not (math.isfinite(metres) and 0 <= metres <= MAX_DISTANCE_M):
        raise BadRequestData(f"{name} must be between 0 and {MAX_DISTANCE_M:.0f} metres")
    if name == "maxDistance":
        return GeoQuery("near", geometry, max_distance_m=metres)
    if name == "minDistance":
        return GeoQuery("near", geometry, min_distance_m=metres)
    raise BadRequestData("georel near takes maxDistance or minDistance")


_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def _check_positions(coords: Any, *, depth: int) -> None:
    count = 0

    def walk(node: Any, level: int) -> None:
        nonlocal count
        if level == 0:
            if not (isinstance(node, list) and len(node) in (2, 3)
                    and all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
                            for c in node)):
                raise BadRequestData("coordinates: a position is [longitude, latitude]")
            if not (-180 <= node[0] <= 180 and -90 <= node[1] <= 90):
                raise BadRequestData("coordinates: longitude or latitude out of range")
            count += 1
            if count > MAX_POSITIONS:
                raise BadRequestData(f"coordinates: more than {MAX_POSITIONS} positions")
            return
        if not isinstance(node, list) or not node:
            raise BadRequestData("coordinates do not fit the geometry type")
        for child in node:
            walk(child, level - 1)

    walk(coords, depth)
