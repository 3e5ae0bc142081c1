"""Geometries that arrive from outside (inventory files, zone rules): checked before storage.

- 3-D positions (``[lon, lat, z]``, legal in RFC 7946 §3.1.1) are accepted and their ``z``
  dropped (PostGIS columns are 2-D); the caller is told so it can say it.
- Coordinates must be finite WGS84 degrees; rings must be closed with at least 4 positions and
  the geometry valid (no self-intersection) and not empty.
- With a service area (``CITYPARK_SERVICE_AREA``, ``minlon,minlat,maxlon,maxlat``), every
  geometry lies inside it, so one operator cannot stretch the public map over the world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from app.core.errors import InvalidInput
from app.core.geo import to_local_metres
from app.core.settings import Bbox, parse_bbox  # noqa: F401 (parse_bbox: re-exported)

MAX_FACILITY_AREA_M2 = 500_000.0  # a lot or garage footprint (0.5 km², a very large lot)
MAX_CURB_LENGTH_M = 2_000.0  # one curb segment
TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}


@dataclass(frozen=True)
class Parsed:
    geometry: BaseGeometry
    dropped_z: bool


def parse(raw: Any, *, what: str, area: Bbox | None = None) -> Parsed:
    """A shapely geometry from GeoJSON ``raw``, or InvalidInput starting with ``what``."""
    if not isinstance(raw, dict) or raw.get("type") not in TYPES or not isinstance(raw.get("coordinates"), list):
        raise InvalidInput(f"{what}: geometry is not valid GeoJSON (a type and coordinates)")
    coords, dropped = _flatten_z(raw["coordinates"], what)
    try:
        geom = shape({"type": raw["type"], "coordinates": coords})
    except Exception:
        raise InvalidInput(f"{what}: geometry is not valid GeoJSON") from None
    if geom.is_empty or not geom.is_valid:
        reason = shapely.is_valid_reason(geom) if not geom.is_empty else "empty"
        raise InvalidInput(f"{what}: geometry is empty or invalid ({reason})")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(f"{what}: coordinates out of range (lon -180..180, lat -90..90)")
    if area is not None and not (area[0] <= minx and maxx <= area[2] and area[1] <= miny and maxy <= area[3]):
        raise InvalidInput(f"{what}: outside the service area {','.join(f'{v:g}' for v in area)} "
                           "(CITYPARK_SERVICE_AREA)")
    return Parsed(geom, dropped)


def parse_point(raw: Any, *, what: str, area: Bbox | None = None) -> tuple[float, float, bool]:
    """``(lon, lat, dropped_z)`` of a GeoJSON Point, checked like ``parse`` (a space's fast path:
    no shapely object per point); InvalidInput starting with ``what``."""
    if not isinstance(raw, dict) or raw.get("type") != "Point":
        if isinstance(raw, dict) and raw.get("type") in TYPES:
            raise InvalidInput(f"{what}: a space needs a Point")
        raise InvalidInput(f"{what}: geometry is not valid GeoJSON (a type and coordinates)")
    coords: Any = raw.get("coordinates")
    if not _is_position(coords):
        raise InvalidInput(f"{what}: geometry has an empty or malformed coordinate list")
    lon, lat = float(coords[0]), float(coords[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"{what}: coordinates out of range (lon -180..180, lat -90..90)")
    if area is not None and not (area[0] <= lon <= area[2] and area[1] <= lat <= area[3]):
        raise InvalidInput(f"{what}: outside the service area {','.join(f'{v:g}' for v in area)} "
                           "(CITYPARK_SERVICE_AREA)")
    return lon, lat, len(coords) > 2


def _flatten_z(coords: Any, what: str, depth: int = 0) -> tuple[Any, bool]:
    """Coordinates with every position cut to (lon, lat); whether any had more."""
    if _is_position(coords):
        return [float(coords[0]), float(coords[1])], len(coords) > 2
    if not isinstance(coords, list) or not coords or depth >= 3:  # MultiPolygon: 3 levels above positions
        raise InvalidInput(f"{what}: geometry has an empty or malformed coordinate list")
    out, dropped = [], False
    for part in coords:
        flat, z = _flatten_z(part, what, depth + 1)
        out.append(flat)
        dropped = dropped or z
    if out and _is_position(coords[0]) and len(out) >= 2:
        _check_ring_like(out, what)
    return out, dropped


def _is_position(value: Any) -> bool:
    if not isinstance(value, list) or not 2 <= len(value) <= 4:
        return False
    try:  # a streamed file may hold integers too big for a float (OverflowError)
        return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    except OverflowError:
        return False


def _check_ring_like(positions: list[list[float]], what: str) -> None:
    """Positions must be finite (non-finite ones were not positions and fail above)."""
    for lon, lat in positions:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidInput(f"{what}: coordinates out of range (lon -180..180, lat -90..90)")


def check_footprint(what: str, kind: str, geom: BaseGeometry) -> None:
    """A facility's footprint must be plausible: a lot, not a city; a curb, not a highway."""
    c = geom.centroid
    local = to_local_metres(geom, c.y, c.x)
    if kind == "curb" and local.length > MAX_CURB_LENGTH_M:
        raise InvalidInput(f"{what}: a curb of {local.length:.0f} m (at most {MAX_CURB_LENGTH_M:.0f} m a segment)")
    if kind != "curb" and local.area > MAX_FACILITY_AREA_M2:
        raise InvalidInput(f"{what}: a {kind} of {local.area / 1e6:.2f} km² (at most "
                           f"{MAX_FACILITY_AREA_M2 / 1e6:.1f} km²)")
