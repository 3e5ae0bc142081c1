"""Small geometry helpers around shapely; database geometry crosses via geoalchemy2 only."""

from __future__ import annotations

import math

import shapely
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def to_local_metres(geom: BaseGeometry, lat0: float, lon0: float) -> BaseGeometry:
    """Equirectangular projection around (lat0, lon0): fine for distances of a few km."""
    kx = math.cos(math.radians(lat0)) * math.pi * EARTH_RADIUS_M / 180
    ky = math.pi * EARTH_RADIUS_M / 180
    return shapely.transform(geom, lambda xy: (xy - (lon0, lat0)) * (kx, ky))


def distance_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """Planar distance in metres between two nearby lon/lat geometries."""
    c = a.centroid
    return to_local_metres(a, c.y, c.x).distance(to_local_metres(b, c.y, c.x))
