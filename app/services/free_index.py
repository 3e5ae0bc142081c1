"""An in-memory index of free spaces, one per API process, for ``GET /v1/spaces/free``.

Reads must cost almost nothing beyond HTTP, so they never touch PostgreSQL: a k-d tree over
every space (unit-sphere coordinates, so chord order is great-circle order) plus arrays of
state. The index follows the database: ``NOTIFY space_state`` (ingest) and ``NOTIFY
assignments`` (holds) name the spaces to re-read, and a full reload runs every ``reload_s``
to pick up inventory changes and anything missed. Holds are still *decided* in PostgreSQL;
the index only answers "which spaces look free, nearest first", with the same rules as the
assignment query (fresh sensor, no active hold, no fresh arrival, facility open, not blocked).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from app.services.geo import EARTH_RADIUS_M, haversine_m
from app.services.matching_eligibility import Eligibility

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
    "coalesce(extract(epoch FROM coalesce(st.last_seen, st.observed_at))::float8, 'NaN')",
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


def unit_xyz(lat: Any, lon: Any) -> NDArray[np.float64]:
    """Points on the unit sphere for (lat, lon) in degrees, shape (n, 3)."""
    la, lo = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


@dataclass
class State:
    """Per-space state arrays (NaN = none)."""

    occupied: NDArray[np.int8]  # 1 occupied, 0 free, -1 unknown
    seen: NDArray[np.float64]  # epoch seconds of the last message
    held_until: NDArray[np.float64]


class FreeIndex:
    """Nearest free spaces from memory; see the module docstring."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.signature: tuple[int, int] | None = None
        self.loaded_at = 0.0
        self._eligibility_at = -1.0
        self._tree: cKDTree | None = None

    async def load(self, conn: asyncpg.Connection) -> None:
        """Read every space (when the inventory changed) and every state."""
        signature = tuple(await conn.fetchrow(SIGNATURE_SQL))
        if signature != self.signature:
            self._inventory(await conn.fetchrow(SPACES_SQL))
            self.signature = signature
        await self.refresh(conn, None)
        self.loaded_at = time.monotonic()

    def _inventory(self, row: asyncpg.Record) -> None:
        ids, facility, lat, lon, accessible, ev, no_parking = (list(c or []) for c in row)
        self.ids, self.pos = ids, {sid: i for i, sid in enumerate(ids)}
        self.facility = np.array(facility, dtype=object)
        self.lat, self.lon = np.array(lat, dtype=float), np.array(lon, dtype=float)
        self.accessible, self.ev = np.array(accessible, dtype=bool), np.array(ev, dtype=bool)
        self.no_parking = np.array(no_parking, dtype=bool)
        self.excluded = self.no_parking.copy()
        n = len(ids)
        self.state = State(np.full(n, -1, np.int8), np.full(n, np.nan), np.full(n, np.nan))
        self._tree = cKDTree(unit_xyz(self.lat, self.lon)) if n else None
        self._eligibility_at = -1.0

    async def refresh(self, conn: asyncpg.Connection, ids: list[str] | None) -> None:
        """Re-read the state of ``ids`` (all spaces, as whole columns, when None)."""
        if ids is None:
            row = await conn.fetchrow(ALL_STATES_SQL)
            if list(row[0] or []) == self.ids:  # else the inventory moved: next load rebuilds it
                self.state = State(np.array(row[1], np.int8), *(np.array(c, float) for c in row[2:]))
            return
        for r in await conn.fetch(SOME_STATES_SQL, ids):
            i = self.pos.get(r[0])
            if i is not None:
                self.state.occupied[i], self.state.seen[i], self.state.held_until[i] = r[1], r[2], r[3]

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

    def apply(self, eligibility: Eligibility) -> None:
        """Exclude spaces of closed facilities and blocked spaces (when eligibility changed)."""
        if eligibility.taken_at == self._eligibility_at or not self.ids:
            return
        closed = np.isin(self.facility, list(eligibility.closed))
        blocked = np.isin(np.array(self.ids, dtype=object), list(eligibility.blocked_spaces))
        self.excluded = self.no_parking | closed | blocked
        self._eligibility_at = eligibility.taken_at

    def nearest(self, lat: float, lon: float, *, limit: int, radius_m: float,
                accessible: bool = False, ev: bool = False, now: float | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` free spaces within ``radius_m`` of (lat, lon), nearest first."""
        return self._rows(self.nearest_idx(lat, lon, limit=limit, radius_m=radius_m, accessible=accessible,
                                           ev=ev, now=now), lat, lon)

    def nearest_idx(self, lat: float, lon: float, *, limit: int, radius_m: float, accessible: bool = False,
                    ev: bool = False, now: float | None = None,
                    exclude: set[str] | None = None) -> NDArray[np.int_]:
        """Positions of up to ``limit`` free spaces within ``radius_m``, nearest first, none in ``exclude``."""
        if self._tree is None:
            return np.empty(0, dtype=int)
        now = time.time() if now is None else now
        chord = 2 * math.sin(min(radius_m / EARTH_RADIUS_M, math.pi) / 2)
        la, lo = math.radians(lat), math.radians(lon)
        point = (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))
        k = min(len(self.ids), max(16, limit * 2))
        while True:
            dist, idx = self._tree.query(point, k=k, distance_upper_bound=chord * (1 + 1e-9))
            idx = np.atleast_1d(idx)[np.isfinite(np.atleast_1d(dist))]
            good = idx[self._free(idx, now, accessible, ev)]
            if exclude:
                good = good[[self.ids[i] not in exclude for i in good.tolist()]]
            if len(good) >= limit or len(idx) < k or k == len(self.ids):
                return good[:limit]
            k = min(len(self.ids), k * 4)

    def _free(self, idx: NDArray[np.int_], now: float, accessible: bool, ev: bool) -> NDArray[np.bool_]:
        s = self.state
        ok = (s.occupied[idx] == 0) & (s.seen[idx] > now - self.stale_after_s) & ~self.excluded[idx]
        ok &= ~(s.held_until[idx] > now)
        if accessible:
            ok &= self.accessible[idx]
        if ev:
            ok &= self.ev[idx]
        return ok

    def _rows(self, idx: NDArray[np.int_], lat: float, lon: float) -> list[dict[str, Any]]:
        rows = []
        for i in idx.tolist():
            la, lo = float(self.lat[i]), float(self.lon[i])
            rows.append({"space_id": self.ids[i], "facility_id": self.facility[i], "lat": la, "lon": lo,
                         "distance_m": round(haversine_m(lat, lon, la, lo), 1)})
        return rows
