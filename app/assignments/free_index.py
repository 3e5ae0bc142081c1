"""An in-memory index of free spaces, one per API process, for ``GET /v1/spaces/free``.

Reads must cost almost nothing beyond HTTP, so they never touch PostgreSQL: the spaces are
kept in the order of a grid of square cells (:class:`Grid`), so the cells around a point are a
few contiguous slices of plain arrays and a query is a handful of numpy calls (a k-d tree's
per-query overhead alone cost more than that); candidates are ranked by great-circle distance.
The index follows the database: ``NOTIFY space_state`` (ingest) and ``NOTIFY
assignments`` (holds) name the spaces to re-read, and a full reload runs every ``reload_s``
to pick up inventory changes and anything missed. Holds are still *decided* in PostgreSQL;
the index only answers "which spaces look free, nearest first", with the same rules as the
assignment query (fresh sensor, no active hold, no fresh arrival, facility open, not blocked).
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import orjson
from numpy.typing import NDArray

from app.assignments.eligibility import Eligibility
from matching.geo import M_PER_DEGREE, arc_m, least_dot, unit_xyz

# Whole columns in id order, as arrays: one row, decoded in C by asyncpg.
SPACES_SQL = """
SELECT array_agg(id ORDER BY id), array_agg(facility_id ORDER BY id), array_agg(ST_Y(geom) ORDER BY id),
       array_agg(ST_X(geom) ORDER BY id), array_agg(accessible ORDER BY id), array_agg(ev ORDER BY id),
       array_agg(no_parking ORDER BY id)
FROM spaces
"""
SIGNATURE_SQL = "SELECT count(*), coalesce(sum(hashtext(id)::int8), 0) FROM spaces"

_STATE_FROM = """
FROM spaces s
LEFT JOIN space_state st ON st.space_id = s.id
LEFT JOIN (SELECT space_id, max(upper(hold)) AS until FROM assignments
           WHERE status IN ('held', 'reassigned') AND space_id IS NOT NULL AND upper(hold) > now()
           GROUP BY space_id) h ON h.space_id = s.id
"""
_STATE_COLUMNS = (
    "coalesce(st.occupied::int, -1)",
    "coalesce(extract(epoch FROM st.last_seen)::float8, 'NaN')",  # when heard from (staleness)
    "coalesce(extract(epoch FROM h.until)::float8, 'NaN')",
)
ALL_STATES_SQL = "SELECT array_agg(s.id ORDER BY s.id), " + ", ".join(
    f"array_agg({c} ORDER BY s.id)" for c in _STATE_COLUMNS) + _STATE_FROM
SOME_STATES_SQL = f"SELECT s.id, {', '.join(_STATE_COLUMNS)} {_STATE_FROM} WHERE s.id = ANY($1::text[])"


# Holds placed since ``$1`` (epoch s) by any process; new holds are not notified (see 0003).
NEW_HOLDS_SQL = """
SELECT space_id, extract(epoch FROM upper(hold))::float8 AS until, extract(epoch FROM now())::float8 AS now
FROM assignments
WHERE hold && tstzrange(now(), NULL) AND lower(hold) > to_timestamp($1)
  AND status IN ('held', 'reassigned') AND space_id IS NOT NULL
"""


# A page's cursor: the last space's dot product (None when it came from SQL), id and metres.
After = tuple[float | None, str, float]

CELL_M = 50.0
MAX_DENSE_CELLS = 4_000_000  # 100 km × 100 km of 50 m cells
# Window half-widths tried in turn (cells): steps of ~1.5× up to beyond any radius.
_HALF_WIDTHS = tuple(sorted({2**k for k in range(23)} | {3 * 2**k for k in range(22)}))


class Grid:
    """Square ``cell_m`` cells of an equirectangular projection around the points' centre.

    ``order`` sorts the points by cell key ``cx * ny + cy``; once they are stored in that order
    (as :class:`FreeIndex` does), the cells of one grid column of a window are one contiguous
    run ``[start[key_lo], start[key_hi + 1])``.
    """

    def __init__(self, lat: NDArray[np.float64], lon: NDArray[np.float64], cell_m: float = CELL_M) -> None:
        self.cell_m = cell_m
        self.lat0, self.lon0 = float(np.mean(lat)), float(np.mean(lon))
        self.cos0 = math.cos(math.radians(self.lat0))
        self.max_abs_lat = float(np.abs(lat).max())
        self._covered: list[float] = []
        x, y = self._project(lat, lon)
        self.x_min, self.y_min = float(x.min()), float(y.min())
        cx = ((x - self.x_min) // cell_m).astype(np.int64)
        cy = ((y - self.y_min) // cell_m).astype(np.int64)
        self.nx, self.ny = int(cx.max()) + 1, int(cy.max()) + 1
        keys = cx * self.ny + cy
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        # Run starts as a plain list (cheap to index from Python) for a city-sized grid;
        # larger grids find their runs with searchsorted.
        cells = self.nx * self.ny
        self.start: list[int] | None = (
            np.searchsorted(self.keys, np.arange(cells + 1)).tolist() if cells <= MAX_DENSE_CELLS else None)

    def _project(self, lat: Any, lon: Any) -> tuple[Any, Any]:
        return (lon - self.lon0) * self.cos0 * M_PER_DEGREE, (lat - self.lat0) * M_PER_DEGREE

    def cell(self, lat: float, lon: float) -> tuple[int, int]:
        """The cell (column, row) of a point, possibly outside the grid."""
        x, y = self._project(lat, lon)
        return math.floor((x - self.x_min) / self.cell_m), math.floor((y - self.y_min) / self.cell_m)

    def runs(self, cx: int, cy: int, r: int) -> list[tuple[int, int]]:
        """Non-empty ``[a, b)`` runs (in sorted order) of the cells ``cx ± r`` × ``cy ± r``."""
        x_lo, x_hi, y_lo, y_hi = max(cx - r, 0), min(cx + r, self.nx - 1), max(cy - r, 0), min(cy + r, self.ny - 1)
        if x_lo > x_hi or y_lo > y_hi:
            return []
        columns = range(x_lo * self.ny, x_hi * self.ny + 1, self.ny)
        if self.start is not None:
            start = self.start
            return [(start[c + y_lo], start[c + y_hi + 1]) for c in columns if start[c + y_hi + 1] > start[c + y_lo]]
        found = self.keys.searchsorted([c + y_lo for c in columns] + [c + y_hi + 1 for c in columns]).tolist()
        return [(a, b) for a, b in zip(found[:len(columns)], found[len(columns):], strict=True) if b > a]

    def spans(self, cx: int, cy: int, r: int) -> bool:
        """Whether the window of half-width ``r`` around cell (cx, cy) holds the whole grid."""
        return cx - r <= 0 and cy - r <= 0 and cx + r >= self.nx - 1 and cy + r >= self.ny - 1

    def covered_dot(self, step: int, lat: float) -> float:
        """:func:`_dot_within` of ``covered_m`` for half-width ``_HALF_WIDTHS[step]`` around a point at
        ``lat``: for points within the grid's latitudes, one cached value taken at its most poleward
        edge (where east-west metres per cell are fewest)."""
        if abs(lat) > self.max_abs_lat:
            return least_dot(self.covered_m(lat, _HALF_WIDTHS[step]))
        while len(self._covered) <= step:
            self._covered.append(least_dot(self.covered_m(self.max_abs_lat, _HALF_WIDTHS[len(self._covered)])))
        return self._covered[step]

    def covered_m(self, lat: float, r: int) -> float:
        """True distance within which every point lies inside the window of half-width ``r`` cells
        around a point at ``lat``: north-south exact, east-west scaled by cos(lat) / cos(lat0)."""
        half = r * self.cell_m
        furthest = min(abs(lat) + half / M_PER_DEGREE, 90.0)
        return half * min(1.0, math.cos(math.radians(furthest)) / self.cos0) * 0.999


@dataclass
class State:
    """Per-space state arrays (NaN = none)."""

    occupied: NDArray[np.int8]  # 1 occupied, 0 free, -1 unknown
    seen: NDArray[np.float64]  # epoch seconds of the last message
    held_until: NDArray[np.float64]


class FreeIndex:
    """Nearest free spaces from memory; see the module docstring.

    Spaces are stored in grid order: position ``i`` of every array (``ids``, ``lat``, ``state``…)
    is the same space, and ``pos`` maps an id to its position. A space is free while
    ``lo[i] <= now < hi[i]``: ``lo`` is the end of its hold, ``hi`` the moment its sensor goes
    stale (``-inf`` when it is occupied, unknown or excluded). ``free`` caches that test for
    every space, valid from ``_free_at`` until ``_free_until``, the next moment any space's
    answer changes by time alone; a change of state updates it in place.
    """

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.rows: list[tuple[str, str, float, float, bool, bool]] = []
        self._json: list[bytes | None] = []  # per position: serialised constant fields, on first answer
        self.signature: tuple[int, int] | None = None
        self.loaded_at = 0.0
        self._eligibility_at = -1.0
        self._grid: Grid | None = None
        self._by_id: list[str] = []
        self._r_hint = 0  # which half-width sufficed last (speed only, never the answer)
        self._free_at = self._free_until = -math.inf

    async def load(self, conn: asyncpg.Connection) -> None:
        """Read every space (when the inventory changed) and every state."""
        signature = tuple(await conn.fetchrow(SIGNATURE_SQL))
        if signature != self.signature:
            self._inventory(await conn.fetchrow(SPACES_SQL))
            self.signature = signature
        await self.refresh(conn, None)
        self.loaded_at = time.monotonic()

    def _inventory(self, row: Any) -> None:
        """The spaces (columns in id order, as ``SPACES_SQL`` returns them), stored in grid order."""
        ids, facility, lat, lon, accessible, ev, no_parking = (list(c or []) for c in row)
        self._by_id = ids
        lat_a, lon_a = np.array(lat, dtype=float), np.array(lon, dtype=float)
        self._grid = Grid(lat_a, lon_a) if ids else None
        order = self._grid.order if self._grid else np.empty(0, dtype=np.int64)
        self._order = order  # grid position -> id-order position
        self.ids = [ids[i] for i in order.tolist()]
        self.pos = {sid: i for i, sid in enumerate(self.ids)}
        self.facility = np.array(facility, dtype=object)[order]
        self.lat, self.lon = lat_a[order], lon_a[order]
        self.accessible = np.array(accessible, dtype=bool)[order]
        self.ev = np.array(ev, dtype=bool)[order]
        self.no_parking = np.array(no_parking, dtype=bool)[order]
        self.excluded = self.no_parking.copy()
        self.xyz = unit_xyz(self.lat, self.lon)
        self._positions = np.arange(len(ids))
        # per position, as Python objects (building answers from numpy scalars costs more)
        self.rows = list(zip(self.facility.tolist(), self.ids, self.lat.tolist(), self.lon.tolist(),
                             self.accessible.tolist(), self.ev.tolist(), strict=True))
        self._json = [None] * len(ids)
        n = len(ids)
        self.state = State(np.full(n, -1, np.int8), np.full(n, np.nan), np.full(n, np.nan))
        self._eligibility_at = -1.0
        self._derive()

    def set_states(self, occupied: Any, seen: Any, held_until: Any) -> None:
        """Whole state columns in id order (as ``ALL_STATES_SQL`` returns them)."""
        order = self._order
        self.state = State(np.array(occupied, np.int8)[order], np.array(seen, float)[order],
                           np.array(held_until, float)[order])
        self._derive()

    async def refresh(self, conn: asyncpg.Connection, ids: list[str] | None) -> None:
        """Re-read the state of ``ids`` (all spaces, as whole columns, when None)."""
        if ids is None:
            row = await conn.fetchrow(ALL_STATES_SQL)
            if list(row[0] or []) == self._by_id:  # else the inventory moved: next load rebuilds it
                self.set_states(*row[1:])
            return
        for r in await conn.fetch(SOME_STATES_SQL, ids):
            i = self.pos.get(r[0])
            if i is not None:
                self.state.occupied[i], self.state.seen[i], self.state.held_until[i] = r[1], r[2], r[3]
                self._derive_one(i)

    async def poll_holds(self, conn: asyncpg.Connection, since: float) -> float:
        """Mark holds placed since ``since`` (epoch s); returns the database's clock."""
        rows = await conn.fetch(NEW_HOLDS_SQL, since)
        for space_id, until, _ in rows:
            self.mark_held(space_id, until)
        return rows[0]["now"] if rows else await conn.fetchval("SELECT extract(epoch FROM now())::float8")

    def mark_held(self, space_id: str, until: float) -> None:
        """A hold this process (or the poll) knows of: hide the space until ``until``."""
        i = self.pos.get(space_id)
        if i is not None and not self.state.held_until[i] >= until:
            self.state.held_until[i] = until
            self._derive_one(i)

    def apply(self, eligibility: Eligibility) -> None:
        """Exclude spaces of closed facilities and blocked spaces (when eligibility changed)."""
        if eligibility.taken_at == self._eligibility_at or not self.ids:
            return
        closed = np.isin(self.facility, list(eligibility.closed))
        blocked = np.isin(np.array(self.ids, dtype=object), list(eligibility.blocked_spaces))
        self.excluded = self.no_parking | closed | blocked
        self._eligibility_at = eligibility.taken_at
        self._derive()

    # --- free or not -------------------------------------------------------------------------

    def _derive(self) -> None:
        """``lo``/``hi`` of every space from the state; the ``free`` cache is recomputed on use."""
        s = self.state
        self.lo = np.nan_to_num(s.held_until, nan=-np.inf)
        usable = (s.occupied == 0) & ~self.excluded
        self.hi = np.where(usable, np.nan_to_num(s.seen + self.stale_after_s, nan=-np.inf), -np.inf)
        self._free_at = self._free_until = -math.inf

    def _derive_one(self, i: int) -> None:
        s = self.state
        lo = float(s.held_until[i]) if s.held_until[i] == s.held_until[i] else -math.inf
        usable = s.occupied[i] == 0 and not self.excluded[i] and s.seen[i] == s.seen[i]
        hi = float(s.seen[i]) + self.stale_after_s if usable else -math.inf
        self.lo[i], self.hi[i] = lo, hi
        if self._free_at > -math.inf:
            now = self._free_at
            self.free[i] = lo <= now < hi
            for t in (lo, hi):
                if now < t < self._free_until:
                    self._free_until = t

    def _free_now(self, now: float) -> NDArray[np.bool_]:
        """Which spaces are free at ``now`` (cached until some space's answer changes by time)."""
        if not self._free_at <= now < self._free_until:
            self.free = (self.lo <= now) & (now < self.hi)
            later = np.concatenate([self.lo[self.lo > now], self.hi[self.hi > now]])
            self._free_at, self._free_until = now, float(later.min()) if len(later) else math.inf
        return self.free

    # --- queries -----------------------------------------------------------------------------

    def nearest(self, lat: float, lon: float, *, limit: int, radius_m: float,
                accessible: bool = False, ev: bool = False, now: float | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` free spaces within ``radius_m`` of (lat, lon), nearest first."""
        found = self.search(lat, lon, limit=limit, radius_m=radius_m, accessible=accessible, ev=ev, now=now)
        rows = self.rows
        return [{"space_id": rows[i][1], "facility_id": rows[i][0], "lat": rows[i][2], "lon": rows[i][3],
                 "distance_m": round(d, 1)} for i, d in found]

    def nearest_json(self, lat: float, lon: float, *, limit: int, radius_m: float,
                     accessible: bool = False, ev: bool = False, now: float | None = None) -> bytes:
        """``orjson.dumps(self.nearest(...))``, byte for byte, from each space's serialised
        constant fields (cached on first use) and its distance."""
        return self._json_of(self.search(lat, lon, limit=limit, radius_m=radius_m, accessible=accessible, ev=ev,
                                         now=now))

    def _json_of(self, found: list[tuple[int, float]]) -> bytes:
        cache, rows, dumps = self._json, self.rows, orjson.dumps
        parts = []
        for i, d in found:
            head = cache[i]
            if head is None:
                facility, space, lat_i, lon_i = rows[i][:4]
                head = cache[i] = dumps({"space_id": space, "facility_id": facility, "lat": lat_i,
                                         "lon": lon_i})[:-1] + b',"distance_m":'
            parts.append(head + dumps(round(d, 1)) + b"}")
        return b"[" + b",".join(parts) + b"]"

    def page_json(self, lat: float, lon: float, *, limit: int, radius_m: float, accessible: bool = False,
                  ev: bool = False, now: float | None = None,
                  after: After | None = None) -> tuple[bytes, After | None]:
        """One page of :meth:`nearest_json` after the cursor ``after`` (nearest first, ties by
        id), and the cursor of its last space when more follow (else None)."""
        found = self.search_dots(lat, lon, limit=limit + 1, radius_m=radius_m, accessible=accessible, ev=ev,
                                 now=now, after=after)
        more = len(found) > limit
        found = found[:limit]
        body = self._json_of([(i, arc_m(d)) for i, d in found])
        if not more:
            return body, None
        i, d = found[-1]
        return body, (d, self.ids[i], arc_m(d))

    def in_bbox(self, bbox: tuple[float, float, float, float], *, limit: int, accessible: bool = False,
                ev: bool = False, now: float | None = None,
                after_id: str | None = None) -> tuple[list[dict[str, Any]], int, bool]:
        """Free spaces inside ``bbox`` (minlon, minlat, maxlon, maxlat) in id order, the first
        ``limit`` after ``after_id``; with how many there are in all and whether more follow."""
        if self._grid is None:
            return [], 0, False
        free = self._free_now(time.time() if now is None else now)
        minx, miny, maxx, maxy = bbox
        ok = free & (self.lat >= miny) & (self.lat <= maxy) & (self.lon >= minx) & (self.lon <= maxx)
        if accessible:
            ok &= self.accessible
        if ev:
            ok &= self.ev
        pos = np.flatnonzero(ok)
        total = len(pos)
        ranks = self._order[pos]
        order = np.argsort(ranks, kind="stable")
        pos, ranks = pos[order], ranks[order]
        if after_id is not None:
            pos = pos[ranks > self._rank(after_id)]
        rows = self.rows
        page = [{"space_id": rows[i][1], "facility_id": rows[i][0], "lat": rows[i][2], "lon": rows[i][3],
                 "accessible": rows[i][4], "ev": rows[i][5]} for i in pos[:limit].tolist()]
        return page, total, len(pos) > limit

    def _rank(self, space_id: str) -> float:
        """A space id's place in id order (between its neighbours' when it is gone)."""
        i = self.pos.get(space_id)
        if i is not None:
            return int(self._order[i])
        return bisect.bisect_left(self._by_id, space_id) - 0.5

    def search(self, lat: float, lon: float, *, limit: int, radius_m: float, accessible: bool = False,
               ev: bool = False, now: float | None = None,
               exclude: set[str] | None = None) -> list[tuple[int, float]]:
        """``(position, great-circle metres)`` of up to ``limit`` free spaces within ``radius_m``,
        nearest first, none in ``exclude``."""
        found = self.search_dots(lat, lon, limit=limit, radius_m=radius_m, accessible=accessible, ev=ev,
                                 now=now, exclude=exclude)
        return [(i, arc_m(d)) for i, d in found]

    def search_dots(self, lat: float, lon: float, *, limit: int, radius_m: float, accessible: bool = False,
                    ev: bool = False, now: float | None = None, exclude: set[str] | None = None,
                    after: After | None = None) -> list[tuple[int, float]]:
        """``(position, dot product)`` of up to ``limit`` free spaces within ``radius_m``, nearest
        first (ties in grid order, which is id order for spaces at one point), none in
        ``exclude``, all after the cursor ``after`` (a previous page's last (dot, id, metres)).

        Grows a window of cells until it holds ``limit`` free spaces nearer than anything outside
        it, or covers ``radius_m``, and ranks what it holds by chord (= great-circle) distance.
        """
        grid = self._grid
        if grid is None or limit <= 0:
            return []
        after_dot, after_pos = self._after(after)
        free = self._free_now(time.time() if now is None else now)
        cx, cy = grid.cell(lat, lon)
        la, lo = math.radians(lat), math.radians(lon)
        point = np.array((math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)))
        floor = least_dot(radius_m)
        step = self._r_hint
        while True:
            runs = grid.runs(cx, cy, _HALF_WIDTHS[step])
            if len(runs) == 1:
                pos = self._positions[runs[0][0]:runs[0][1]]
            else:
                pos = np.concatenate([self._positions[a:b] for a, b in runs]) if runs else self._positions[:0]
            ok = free[pos]
            if accessible:
                ok &= self.accessible[pos]
            if ev:
                ok &= self.ev[pos]
            pos = pos[ok]
            dot = self.xyz[pos] @ point
            order = np.argsort(-dot, kind="stable")  # ties keep grid order: a total order for cursors
            covered = grid.covered_dot(step, lat)
            # the window holds the whole answer when it covers the radius or the grid
            final = covered <= floor or grid.spans(cx, cy, _HALF_WIDTHS[step])
            found: list[tuple[int, float]] = []
            for i, d in zip(pos[order].tolist(), dot[order].tolist(), strict=True):
                if d < floor:
                    final = True  # beyond the radius: nothing further counts
                    break
                if d < covered and not final:
                    break  # the window may miss spaces nearer than this one: widen it
                if d > after_dot or (d == after_dot and i <= after_pos):
                    continue  # on an earlier page
                if not (exclude and self.ids[i] in exclude):
                    found.append((i, d))
                    if len(found) == limit:
                        final = True
                        break
            if final:
                if step and found and found[-1][1] >= grid.covered_dot(step - 1, lat):
                    step -= 1  # a smaller window would have done
                self._r_hint = step
                return found
            step += 1

    def _after(self, after: After | None) -> tuple[float, float]:
        """The cursor as (dot, grid position): skip what is nearer, or as near and not later."""
        if after is None:
            return math.inf, math.inf
        dot, space_id, metres = after
        if dot is None:  # a cursor of the SQL answer (before the index loaded): by its metres
            dot = least_dot(metres)
        i = self.pos.get(space_id)
        return dot, (-1.0 if i is None else float(i))

