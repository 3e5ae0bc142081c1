"""Small geometry helpers around shapely; database geometry crosses via geoalchemy2 only."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from matching.geo import project


def to_local_metres(geom: BaseGeometry, lat0: float, lon0: float) -> BaseGeometry:
    """``matching.geo.project`` of a lon/lat geometry around (lat0, lon0): fine for a few km."""
    return shapely.transform(geom, lambda xy: np.column_stack(project(xy[:, 1], xy[:, 0], (lat0, lon0))))


def distance_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """Planar distance in metres between two nearby lon/lat geometries."""
    c = a.centroid
    return to_local_metres(a, c.y, c.x).distance(to_local_metres(b, c.y, c.x))
