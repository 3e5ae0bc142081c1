"""``ParkingSpot`` queries answered from the process's free-space index (``app.assignments.free_index``),
the same index and change feed that answer ``GET /v1/spaces/free``: no SQL per request.

The index holds every space's position, sensor state (``occupied``, ``last_seen``,
``observed_at``), facility, kind, operator and sensor, kept current by ``NOTIFY space_state``
and a full reload every minute; ``facilities.closed`` comes with the eligibility it applies.
The answer is the SQL path's (``entities.spots``), entity for entity and in the same order:

- status: ``closed`` on a no-parking space or a closed facility, else ``unknown`` when never
  reported or silent for ``stale_after_s`` (``app.occupancy.staleness``), else free/occupied;
- geo: ``near`` in great-circle metres (``matching.geo``, as the SQL path's sphere distances),
  nearest first; the other relations with shapely (GEOS, as PostGIS) after a bounding-box cut;
- order by the database's id order (its collation), ``near`` by distance then id;
- ``q``: status terms prefilter the candidates as arrays, then the key-values of each candidate,
  in order, are tested by ``query.matches`` until the window is full (all of them for a count).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import shapely
import shapely.errors
import shapely.geometry
from numpy.typing import NDArray

from app.assignments.free_index import FreeIndex
from app.core.times import iso_utc
from app.standards.ngsi_ld import query
from app.standards.ngsi_ld.entities import Filters, Row, split_urn, spot_row
from app.standards.ngsi_ld.errors import BadRequestData
from app.standards.ngsi_ld.geo import GeoQuery
from matching.geo import EARTH_RADIUS_M

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATUS = np.array(["free", "occupied", "unknown", "closed"], dtype=object)
_PREDICATES = {"within": shapely.within, "contains": shapely.contains, "intersects": shapely.intersects,
               "equals": shapely.equals, "overlaps": shapely.overlaps}


@dataclass(frozen=True)
class SpotAnswer:
    rows: list[Row]
    more: bool
    total: int | None


def usable(index: FreeIndex | None) -> bool:
    """Whether ``index`` is loaded with what spots need."""
    return index is not None and index.spot_rows is not None and len(index.ids) == len(index.spot_rows)


def spots(index: FreeIndex, *, filters: Filters, q: query.Query | None, offset: int, limit: int,
          count: bool, now: float | None = None) -> SpotAnswer:
    """The window ``[offset, offset + limit)`` of matching spots, whether more follow, the total if ``count``."""
    now = time.time() if now is None else now
    geo = filters.geo
    if (not count and geo is not None and geo.relation == "near" and geo.max_distance_m is not None
            and filters.ids is None and filters.id_pattern is None and index._grid is not None
            and _status_prefilter(q, np.zeros(0, np.int8))[1]):
        near, metres, status = _nearest(index, geo, q, offset + limit + 1, now)
        rows = [_row(index, int(near[k]), status[k], metres[k]) for k in range(offset, min(len(near), offset + limit))]
        return SpotAnswer(rows, len(near) > offset + limit, None)
    pos, dist = _candidates(index, filters)
    codes = _status(index, pos, now)
    keep, exact = _status_prefilter(q, codes)
    if keep is not None:
        pos, dist, codes = pos[keep], None if dist is None else dist[keep], codes[keep]
    if exact and filters.id_pattern is None:  # every candidate matches: order and build only the window
        first = _first(index, pos, dist, offset + limit)[offset:]
        rows = [_row(index, int(pos[k]), codes[k], None if dist is None else dist[k]) for k in first.tolist()]
        return SpotAnswer(rows, len(pos) > offset + limit, len(pos) if count else None)
    order = _first(index, pos, dist, len(pos))
    pos, codes = pos[order], codes[order]
    dist = None if dist is None else dist[order]
    pattern = re.compile(filters.id_pattern) if filters.id_pattern is not None else None
    rows, seen, more = [], 0, False
    for row in _matching(index, pos, codes, dist, None if exact else q, pattern):
        if seen >= offset + limit:
            more = True
            if not count:
                break
        elif seen >= offset:
            rows.append(row)
        seen += 1
    return SpotAnswer(rows, more, seen if count else None)


def _matching(index: FreeIndex, pos: NDArray[np.int64], codes: NDArray[np.int8], dist: NDArray[np.float64] | None,
              q: query.Query | None, pattern: re.Pattern[str] | None) -> Iterator[Row]:
    ids = index.ids
    for k, i in enumerate(pos.tolist()):
        if pattern is not None and pattern.search("urn:ngsi-ld:ParkingSpot:" + ids[i]) is None:
            continue
        row = _row(index, i, codes[k], None if dist is None else dist[k])
        if q is None or query.matches(q, row.kv):
            yield row


def _row(index: FreeIndex, i: int, code: Any, distance_m: float | None) -> Row:
    """``entities.spot_row`` of position ``i``: its constant part built once (``index.spot_cache``),
    with its observation time as last formatted."""
    cached = index.spot_cache[i]
    us = index.observed_us[i]
    if cached is None or cached[1] != us:
        if cached is None:
            facility, space, lat, lon = index.rows[i][:4]
            assert index.spot_rows is not None
            kind, operator, sensor = index.spot_rows[i]
            kv = spot_row(space, facility, kind, operator, sensor, lon, lat, "", None, None).kv
        else:
            kv = cached[0]
        observed = None if us is None else EPOCH + timedelta(microseconds=us)
        cached = index.spot_cache[i] = (kv, us, observed, None if observed is None else iso_utc(observed))
    kv = dict(cached[0])  # same keys in the same order as spot_row's
    kv["status"] = STATUS[code]
    if cached[2] is not None:
        kv["timeInstant"] = cached[3]
    return Row(kv, cached[2], None if distance_m is None else float(distance_m))


# --- candidates -------------------------------------------------------------------------------


def _candidates(index: FreeIndex, filters: Filters) -> tuple[NDArray[np.int64], NDArray[np.float64] | None]:
    """Positions passing ids and geo, and (for ``near``) their distances from the point."""
    pos = index._positions
    if filters.ids is not None:
        wanted = [index.pos.get(local) for t, local in (split_urn(i) or ("", "") for i in filters.ids)
                  if t == "ParkingSpot"]
        pos = np.array(sorted(p for p in wanted if p is not None), dtype=np.int64)
    geo = filters.geo
    if geo is None or len(pos) == 0:
        return pos, None
    if geo.relation == "near":
        return _near(index, pos, geo)
    return pos[_relation(index, pos, geo)], None


def _near(index: FreeIndex, pos: NDArray[np.int64], geo: GeoQuery) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Great-circle metres from the chord between unit vectors, ``2R·asin(|a - b| / 2)``: as exact as
    haversine (the index's dot products lose millimetres at a few metres, and two spots a millimetre
    apart must come in PostGIS's order), at a third of its cost."""
    assert geo.point is not None
    lon, lat = geo.point
    if geo.max_distance_m is not None:
        return _within(index, _window(index, pos, lat, lon, geo.max_distance_m), lat, lon, geo.max_distance_m)
    pos, dist = _distances(index, pos, lat, lon, None)
    keep = dist > (geo.min_distance_m or 0.0)  # NOT ST_DWithin
    return pos[keep], dist[keep]


def _within(index: FreeIndex, pos: NDArray[np.int64], lat: float, lon: float, max_d: float
            ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """``pos`` at most ``max_d`` metres from the point (ST_DWithin), with their distances."""
    pos, dist = _distances(index, pos, lat, lon, max_d + 1.0)
    keep = dist <= max_d
    return pos[keep], dist[keep]


def _distances(index: FreeIndex, pos: NDArray[np.int64], lat: float, lon: float, cut_m: float | None
               ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Metres from the point to ``pos`` (those beyond ``cut_m`` dropped first, on the squared chord)."""
    la, lo = math.radians(lat), math.radians(lon)
    point = np.array((math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)))
    diff = index.xyz[pos] - point
    chord2 = np.einsum("ij,ij->i", diff, diff)
    if cut_m is not None:
        pos, chord2 = _cut(pos, chord2, chord2 <= (2 * math.sin(cut_m / (2 * EARTH_RADIUS_M))) ** 2)
    return pos, (2 * EARTH_RADIUS_M) * np.arcsin(np.minimum(np.sqrt(chord2) / 2, 1.0))


def _cut(pos: NDArray[np.int64], values: NDArray[np.float64], keep: NDArray[np.bool_]
         ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    return pos[keep], values[keep]


def _nearest(index: FreeIndex, geo: GeoQuery, q: query.Query | None, need: int, now: float
             ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int8]]:
    """The first ``need`` spots within ``maxDistance`` whose status passes ``q`` (status terms only),
    in order, with distances and status codes: like ``FreeIndex.search``, a window of cells grows
    until it holds ``need`` of them nearer than anything outside it, or covers the distance."""
    assert geo.point is not None
    assert geo.max_distance_m is not None
    assert index._grid is not None
    lon, lat = geo.point
    grid, max_d = index._grid, geo.max_distance_m
    cx, cy = grid.cell(lat, lon)
    r = 2
    while True:
        covered = grid.covered_m(lat, r)
        final = covered >= max_d or grid.spans(cx, cy, r)
        runs = grid.runs(cx, cy, r)
        pos = np.concatenate([index._positions[a:b] for a, b in runs]) if runs else index._positions[:0]
        pos, dist = _within(index, pos, lat, lon, max_d if final else min(max_d, covered))
        codes = _status(index, pos, now)
        keep, _ = _status_prefilter(q, codes)
        if keep is not None:
            pos, dist, codes = pos[keep], dist[keep], codes[keep]
        if final or len(pos) >= need:
            order = _first(index, pos, dist, need)
            return pos[order], dist[order], codes[order]
        r = min(2 * r, _covering(grid, lat, max_d))


def _covering(grid: Any, lat: float, radius_m: float) -> int:
    """The least half-width (cells) whose window holds every point within ``radius_m``."""
    r = max(1, int(radius_m // grid.cell_m))
    while grid.covered_m(lat, r) < radius_m:
        r += 1
    return r


def _window(index: FreeIndex, pos: NDArray[np.int64], lat: float, lon: float, radius_m: float) -> NDArray[np.int64]:
    """The positions of the grid cells around the point that hold every space within ``radius_m``."""
    grid = index._grid
    if grid is None or len(pos) != len(index.ids):
        return pos  # an id list: already short
    cx, cy = grid.cell(lat, lon)
    runs = grid.runs(cx, cy, _covering(grid, lat, radius_m + 1.0))
    if not runs:
        return pos[:0]
    return np.concatenate([pos[a:b] for a, b in runs])


def _relation(index: FreeIndex, pos: NDArray[np.int64], geo: GeoQuery) -> NDArray[np.bool_]:
    """Which of ``pos`` stand in ``geo.relation`` to the query's shape (planar, SRID 4326, as PostGIS)."""
    try:
        shape = shapely.geometry.shape(geo.geometry)
        x0, y0, x1, y1 = shape.bounds
        lon, lat = index.lon[pos], index.lat[pos]
        boxed = (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)
        test = _PREDICATES.get(geo.relation, shapely.intersects)
        inside = np.zeros(len(pos), dtype=bool)
        inside[boxed] = test(shapely.points(lon[boxed], lat[boxed]), shape)
    except shapely.errors.GEOSException as exc:
        raise BadRequestData(f"the geo-query was refused: {exc}") from None
    return ~inside if geo.relation == "disjoint" else inside


# --- status and order -------------------------------------------------------------------------


def _status(index: FreeIndex, pos: NDArray[np.int64], now: float) -> NDArray[np.int8]:
    """0 free, 1 occupied, 2 unknown, 3 closed (the order of ``STATUS``)."""
    state = index.state
    occupied, seen = state.occupied[pos], state.seen[pos]
    fresh = seen > now - index.stale_after_s  # NaN (never heard from) compares False
    codes = np.where(fresh & (occupied >= 0), occupied, 2).astype(np.int8)
    codes[index.no_parking[pos] | index.facility_closed[pos]] = 3
    return codes


def _status_prefilter(q: query.Query | None, codes: NDArray[np.int8]) -> tuple[NDArray[np.bool_] | None, bool]:
    """The candidates that can match, from the ``status`` terms ``q`` requires (None: no cut), and
    whether those terms are the whole of ``q`` (then every kept candidate matches)."""
    if q is None:
        return None, True
    terms = q.parts if isinstance(q, query.Node) and q.op == "and" else (q,)
    keep, exact = None, True
    for term in terms:
        if not (isinstance(term, query.Term) and term.path == ("status",) and term.op in ("==", "!=")
                and term.range is None and all(isinstance(v, str) for v in term.values)):
            exact = False
            continue
        table = np.array([(name in term.values) == (term.op == "==") for name in STATUS])
        hit = table[codes]
        keep = hit if keep is None else keep & hit
    return keep, exact


def _first(index: FreeIndex, pos: NDArray[np.int64], dist: NDArray[np.float64] | None, k: int) -> NDArray[np.int64]:
    """Indices into ``pos`` of its first ``k`` in answer order: by id (the database's order), ``near``
    by distance then id; only the nearest few are sorted when ``k`` is small."""
    rank = index.id_rank[pos]
    if dist is None:
        if k < len(pos):
            part = np.argpartition(rank, k)[:k]
            return part[np.argsort(rank[part], kind="stable")]
        return np.argsort(rank, kind="stable")
    if k < len(pos):
        bound = np.partition(dist, k)[k]
        part = np.nonzero(dist <= bound)[0]  # ties at the bound are sorted by id below
        return part[np.lexsort((rank[part], dist[part]))][:k]
    return np.lexsort((rank, dist))
