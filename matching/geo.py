"""Projection between WGS84 degrees and a local planar frame in metres.

An equirectangular projection around a reference latitude is accurate to well under 0.1 %
over a city district, which is far below the other uncertainties of a parking search.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_M = 6_371_008.8


def project(
    lat: ArrayLike, lon: ArrayLike, origin: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Metres east (x) and north (y) of ``origin`` = (lat, lon) for points in degrees."""
    lat0, lon0 = origin
    k = math.radians(1) * EARTH_RADIUS_M
    x = (np.asarray(lon, dtype=float) - lon0) * k * math.cos(math.radians(lat0))
    y = (np.asarray(lat, dtype=float) - lat0) * k
    return x, y


def unproject(
    x: ArrayLike, y: ArrayLike, origin: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Inverse of :func:`project`: (lat, lon) in degrees."""
    lat0, lon0 = origin
    k = math.radians(1) * EARTH_RADIUS_M
    lat = lat0 + np.asarray(y, dtype=float) / k
    lon = lon0 + np.asarray(x, dtype=float) / (k * math.cos(math.radians(lat0)))
    return lat, lon


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))
