"""Distances on the sphere and the local planar frame: the one definition the whole project uses.

``haversine_m`` is the great-circle distance (scalars or numpy arrays, broadcasting). The
free-space index compares points as unit vectors (``unit_xyz``) by their dot product, which
orders them as the great circle does; ``arc_m`` and ``least_dot`` convert between that dot product
and metres. ``project`` is an equirectangular projection around a reference point, accurate to
well under 0.1 % over a city district, far below the other uncertainties of a parking search.
"""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEGREE = math.radians(1) * EARTH_RADIUS_M  # along a meridian


@overload
def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float: ...
@overload
def haversine_m(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> Any: ...
def haversine_m(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance in metres between points in degrees (a float for floats)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2
    d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d


def unit_xyz(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.float64]:
    """Points on the unit sphere, shape (n, 3): a larger dot product means a shorter great circle."""
    la, lo = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def arc_m(dot: float) -> float:
    """Great-circle metres between unit vectors whose dot product is ``dot`` (2R·asin(chord / 2))."""
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(max(0.0, 2 - 2 * dot)) / 2))


def least_dot(distance_m: float) -> float:
    """The least dot product of unit vectors at most ``distance_m`` apart (|a - b|² = 2 - 2 a·b)."""
    return 1 - 2 * math.sin(min(distance_m / EARTH_RADIUS_M, math.pi) / 2) ** 2


def project(
    lat: ArrayLike, lon: ArrayLike, origin: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Metres east (x) and north (y) of ``origin`` = (lat, lon) for points in degrees."""
    lat0, lon0 = origin
    x = (np.asarray(lon, dtype=float) - lon0) * M_PER_DEGREE * math.cos(math.radians(lat0))
    y = (np.asarray(lat, dtype=float) - lat0) * M_PER_DEGREE
    return x, y
