"""Observed free spaces of facilities on a 15-minute grid, from the event history.

A grid ends at an instant ``end`` (any instant, e.g. a forecast's ``as_of``): column ``k`` is
the time ``T_k = end - (n - 1 - k) × 15 min`` and holds what was observed *before* ``T_k``:

- gate-counted facilities: the last count in ``[T_k - 15 min, T_k)``, carried forward at most
  two hours (a lot that stops counting, or is closed, becomes unknown);
- sensor facilities: spaces free (last event of each space before ``T_k`` says free) among
  the parkable spaces, from one pass over the events (each change of a space's state is a
  ±1 in the column where it lands, a running sum gives the counts; the state at the grid's
  start comes from each space's last event in the week before). Fewer than half of the
  spaces known reads unknown.

Values are shares of the facility's total (``free / total``), NaN where unknown. Nothing at or
after ``end`` is read, which is what makes ``as_of`` forecasts and backtests leak-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import numpy as np

from app.forecast.calendar import SLOT_S

STEP = timedelta(seconds=SLOT_S)
CARRY_SLOTS = 8  # a count is carried forward two hours at most
MIN_KNOWN_FRACTION = 0.5
CHUNK = 200  # facilities per query

FACILITIES_SQL = """
SELECT f.id, f.name, f.capacity, f.counted, f.closed, f.timezone, ST_Y(f.entrance) AS lat, ST_X(f.entrance) AS lon,
       (SELECT count(*) FROM spaces s WHERE s.facility_id = f.id AND NOT s.no_parking) AS parkable
FROM facilities f ORDER BY f.id
"""

COUNTS_SQL = """
SELECT facility_id, array_agg(k ORDER BY k) AS ks, array_agg(free ORDER BY k) AS frees,
       array_agg(coalesce(total, -1) ORDER BY k) AS totals
FROM (
    SELECT DISTINCT ON (facility_id, k) facility_id, free, total,
           $4::int - ceil(extract(epoch FROM $2::timestamptz - observed_at) / 900)::int AS k
    FROM count_events
    WHERE facility_id = ANY($1::text[]) AND observed_at < $2 AND observed_at >= $3
    ORDER BY facility_id, k, observed_at DESC
) c GROUP BY facility_id
"""

SPACES_SQL = """
WITH sp AS (
    SELECT id, facility_id FROM spaces WHERE facility_id = ANY($1::text[]) AND NOT no_parking
), ev AS (
    SELECT sp.id AS space_id, sp.facility_id, l.observed_at, l.seq, l.occupied FROM sp
    CROSS JOIN LATERAL (
        SELECT e.observed_at, e.seq, e.occupied FROM occupancy_events e
        WHERE e.space_id = sp.id AND e.observed_at < $3 AND e.observed_at >= $3 - interval '7 days'
        ORDER BY e.observed_at DESC, e.seq DESC NULLS LAST LIMIT 1) l
    UNION ALL
    SELECT e.space_id, sp.facility_id, e.observed_at, e.seq, e.occupied
    FROM occupancy_events e JOIN sp ON sp.id = e.space_id
    WHERE e.observed_at >= $3 AND e.observed_at < $2
), ch AS (
    SELECT facility_id, observed_at, occupied,
           lag(occupied) OVER (PARTITION BY space_id ORDER BY observed_at, seq NULLS FIRST) AS prev
    FROM ev
), d AS (
    SELECT facility_id,
           greatest(0, $4::int - ceil(extract(epoch FROM $2::timestamptz - observed_at) / 900)::int) AS k,
           sum(occupied::int - coalesce(prev::int, 0))::int AS d_occupied,
           sum((prev IS NULL)::int)::int AS d_known
    FROM ch WHERE prev IS DISTINCT FROM occupied GROUP BY 1, 2
)
SELECT facility_id, array_agg(k ORDER BY k) AS ks, array_agg(d_occupied ORDER BY k) AS occ,
       array_agg(d_known ORDER BY k) AS known
FROM d GROUP BY facility_id
"""


@dataclass
class Inventory:
    """The facilities a forecast knows: id, capacity, kind of counting, zone, entrance."""

    ids: list[str]
    names: list[str]
    capacity: np.ndarray
    counted: np.ndarray
    parkable: np.ndarray
    zones: list[str]
    lat: np.ndarray
    lon: np.ndarray
    closed: np.ndarray
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {fid: i for i, fid in enumerate(self.ids)}

    @property
    def total(self) -> np.ndarray:
        """What free spaces are counted out of: capacity (counted lots) or parkable spaces."""
        return np.where(self.counted, self.capacity, self.parkable).astype(np.float64)

    def subset(self, ids: list[str]) -> Inventory:
        rows = [self.index[i] for i in ids]
        return Inventory([self.ids[r] for r in rows], [self.names[r] for r in rows], self.capacity[rows],
                         self.counted[rows], self.parkable[rows], [self.zones[r] for r in rows],
                         self.lat[rows], self.lon[rows], self.closed[rows])


async def inventory(conn: asyncpg.Connection) -> Inventory:
    """Every facility (one flagged closed is forecast as closed)."""
    rows = await conn.fetch(FACILITIES_SQL)
    return Inventory(
        [r["id"] for r in rows], [r["name"] for r in rows],
        np.array([r["capacity"] for r in rows], dtype=np.float64),
        np.array([r["counted"] for r in rows], dtype=bool),
        np.array([r["parkable"] for r in rows], dtype=np.float64),
        [r["timezone"] for r in rows],
        np.array([r["lat"] for r in rows], dtype=np.float64), np.array([r["lon"] for r in rows], dtype=np.float64),
        np.array([r["closed"] for r in rows], dtype=bool))


@dataclass
class Grid:
    """Shares free (facilities × columns, NaN unknown) on the 15-minute grid ending at ``end``."""

    inv: Inventory
    end: datetime
    share: np.ndarray

    @property
    def n(self) -> int:
        return int(self.share.shape[1])

    @property
    def epoch(self) -> np.ndarray:
        """UTC epoch seconds of each column."""
        return self.end.timestamp() - (self.n - 1 - np.arange(self.n)) * float(SLOT_S)


async def load(conn: asyncpg.Connection, inv: Inventory, *, end: datetime, n: int) -> Grid:
    """The grid of ``n`` columns ending at ``end`` for the facilities of ``inv``."""
    share = np.full((len(inv.ids), n), np.nan)
    start = end - STEP * n  # the first column reads [T_0 - 15 min, T_0)
    for mask, sql, fill in ((inv.counted, COUNTS_SQL, _fill_counts), (~inv.counted, SPACES_SQL, _fill_spaces)):
        ids = [inv.ids[i] for i in np.flatnonzero(mask)]
        for lo in range(0, len(ids), CHUNK):
            for row in await conn.fetch(sql, ids[lo:lo + CHUNK], end, start, n):
                i = inv.index[row["facility_id"]]
                fill(share, i, row, inv, n)
    return Grid(inv, end, share)


def _fill_counts(share: np.ndarray, i: int, row: asyncpg.Record, inv: Inventory, n: int) -> None:
    ks = np.asarray(row["ks"], dtype=np.int64)
    free = np.asarray(row["frees"], dtype=np.float64)
    totals = np.asarray(row["totals"], dtype=np.float64)
    totals = np.where(totals > 0, totals, inv.capacity[i])
    keep = (ks >= 0) & (ks < n) & (totals > 0)
    values = np.full(n, np.nan)
    values[ks[keep]] = np.clip(free[keep] / totals[keep], 0.0, 1.0)
    share[i] = carry_forward(values, CARRY_SLOTS)


def _fill_spaces(share: np.ndarray, i: int, row: asyncpg.Record, inv: Inventory, n: int) -> None:
    total = inv.parkable[i]
    if total <= 0:
        return
    ks = np.asarray(row["ks"], dtype=np.int64)
    keep = ks < n
    occ = np.zeros(n)
    known = np.zeros(n)
    np.add.at(occ, ks[keep], np.asarray(row["occ"], dtype=np.float64)[keep])
    np.add.at(known, ks[keep], np.asarray(row["known"], dtype=np.float64)[keep])
    occ, known = np.cumsum(occ), np.cumsum(known)
    free = np.clip(known - occ, 0.0, total)
    share[i] = np.where(known >= total * MIN_KNOWN_FRACTION, free / total, np.nan)


def carry_forward(values: np.ndarray, limit: int) -> np.ndarray:
    """NaNs after a value take that value, for at most ``limit`` columns."""
    out = values.copy()
    valid = ~np.isnan(values)
    idx = np.where(valid, np.arange(values.size), -1)
    last = np.maximum.accumulate(idx)
    age = np.arange(values.size) - last
    fill = (~valid) & (last >= 0) & (age <= limit)
    out[fill] = values[last[fill]]
    return out
