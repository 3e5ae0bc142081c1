"""Facilities by name: ``GET /v1/facilities?q=`` (the map's search box).

A query matches a facility whose name or id contains it, ignoring case, width (full-width
``Ｐ``, ``１``) and spaces, so ``站前广场`` finds 站前广场停车场 and ``zqgc`` finds ``zqgc-lot``.
Without a point the hits come best first (a name that starts with the query, then shorter
names, then by id); with ``lat``/``lon`` they are filtered by ``radius_m`` and ordered by distance.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from app.availability.service import Snapshot
from matching.geo import haversine_m

MAX_QUERY = 100


def normalise(text: str) -> str:
    """Case-, width- and space-insensitive form of a name or a query."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def search(
    snap: Snapshot, *, q: str, lat: float | None = None, lon: float | None = None,
    radius_m: float = 1000.0, kind: str | None = None, limit: int = 100,
) -> list[tuple[int, float | None]]:
    """(index, distance_m) of the facilities matching ``q``, like :meth:`Snapshot.near`."""
    needle = normalise(q)
    if not needle:
        return []
    hits = []
    for i, item in enumerate(snap.items):
        if kind is not None and item.kind != kind:
            continue
        name, ident = normalise(item.name), item.id.casefold()
        if needle in name or needle in ident:
            hits.append((0 if name.startswith(needle) else 1, len(name), item.id, i))
    if lat is None or lon is None:
        return [(i, None) for *_, i in sorted(hits)[:limit]]
    idx = np.array([i for *_, i in hits], dtype=int)
    if not len(idx):
        return []
    dist = haversine_m(lat, lon, snap.lat[idx], snap.lon[idx])
    order = np.argsort(dist, kind="stable")
    near: list[tuple[int, float | None]] = [(int(idx[j]), float(dist[j])) for j in order if dist[j] <= radius_m]
    return near[:limit]
