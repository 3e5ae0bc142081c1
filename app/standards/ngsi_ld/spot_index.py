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
from app.standards.ngsi_ld import query
from app.standards.ngsi_ld.entities import Filters, Row, split_urn, spot_row
from app.standards.ngsi_ld.errors import BadRequestData
from app.standards.ngsi_ld.geo import GeoQuery
from matching.geo import haversine_m

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
    pos, dist = _candidates(index, filters)
    codes = _status(index, pos, now)
    keep = _status_prefilter(q, codes)
    if keep is not None:
        pos, dist, codes = pos[keep], None if dist is None else dist[keep], codes[keep]
    order = _order(index, pos, dist)
    pos, codes = pos[order], codes[order]
    dist = None if dist is None else dist[order]
    pattern = re.compile(filters.id_pattern) if filters.id_pattern is not None else None
    if q is None and pattern is None:  # every candidate matches: build only the window
        window = range(offset, min(len(pos), offset + limit))
        rows = [_row(index, int(pos[k]), codes[k], None if dist is None else dist[k]) for k in window]
        return SpotAnswer(rows, len(pos) > offset + limit, len(pos) if count else None)
    rows, seen, more = [], 0, False
    for row in _matching(index, pos, codes, dist, q, pattern):
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
    facility, space, lat, lon = index.rows[i][:4]
    assert index.spot_rows is not None
    kind, operator, sensor = index.spot_rows[i]
    us = index.observed_us[i]
    observed = None if us is None else EPOCH + timedelta(microseconds=us)
    return spot_row(space, facility, kind, operator, sensor, lon, lat, STATUS[int(code)], observed,
                    None if distance_m is None else float(distance_m))


# --- candidates -------------------------------------------------------------------------------


def _candidates(index: FreeIndex, filters: Filters) -> tuple[NDArray[np.int64], NDArray[np.float64] | None]:
    """Positions passing ids and geo, and (for ``near``) their distances from the point."""
    pos = np.arange(len(index.ids), dtype=np.int64)
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
    """Haversine metres, not the index's dot products: those lose millimetres at a few metres, and
    two spots a millimetre apart in distance must come in PostGIS's order."""
    assert geo.point is not None
    lon, lat = geo.point
    if geo.max_distance_m is not None:
        pos = _window(index, pos, lat, lon, geo.max_distance_m)
    dist = np.asarray(haversine_m(lat, lon, index.lat[pos], index.lon[pos]), dtype=float).reshape(-1)
    if geo.max_distance_m is not None:
        keep = dist <= geo.max_distance_m  # ST_DWithin
    else:
        keep = dist > (geo.min_distance_m or 0.0)  # NOT ST_DWithin
    return pos[keep], dist[keep]


def _window(index: FreeIndex, pos: NDArray[np.int64], lat: float, lon: float, radius_m: float) -> NDArray[np.int64]:
    """The positions of the grid cells around the point that hold every space within ``radius_m``."""
    grid = index._grid
    if grid is None or len(pos) != len(index.ids):
        return pos  # an id list: already short
    cx, cy = grid.cell(lat, lon)
    r = 1
    while grid.covered_m(lat, r) < radius_m * 1.01 + grid.cell_m and not grid.spans(cx, cy, r):
        r *= 2
    runs = grid.runs(cx, cy, r)
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


def _status_prefilter(q: query.Query | None, codes: NDArray[np.int8]) -> NDArray[np.bool_] | None:
    """The candidates that can match, from the ``status`` terms that ``q`` requires (None: no cut)."""
    if q is None:
        return None
    terms = q.parts if isinstance(q, query.Node) and q.op == "and" else (q,)
    keep = None
    for term in terms:
        if not (isinstance(term, query.Term) and term.path == ("status",) and term.op in ("==", "!=")
                and term.range is None and all(isinstance(v, str) for v in term.values)):
            continue
        hit = np.isin(codes, [k for k, name in enumerate(STATUS) if name in term.values])
        hit = hit if term.op == "==" else ~hit
        keep = hit if keep is None else keep & hit
    return keep


def _order(index: FreeIndex, pos: NDArray[np.int64], dist: NDArray[np.float64] | None) -> NDArray[np.int64]:
    rank = index.id_rank[pos]
    if dist is None:
        return np.argsort(rank, kind="stable")
    return np.lexsort((rank, dist))  # nearest first, then id
