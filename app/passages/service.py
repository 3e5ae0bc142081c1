"""Gate passages: store, void, link stays, recount the free count; plate retention.

**Which wins, passages or counts.** The newest gate count (by ``observed_at``) is the truth as
of its time. Passages observed after it move the free count from there (``in`` −1, ``out``
+1); passages observed at or before it are already in it. So an authoritative count always
resets the drift of the passages before it, and neither arrival order nor re-delivery changes
the result: after every batch the free count of each touched lot is recomputed as
``newest count + Σ passages since``. A lot that never sent a count starts from its capacity
(empty) at its first passage.

**Out of range.** A free count that the passages take below 0 or above capacity is kept
unclamped in ``passages.free_after`` and flags the passage (``free_below_zero``,
``free_above_capacity``); ``facility_counts.free`` (what readers see) is held within
0..capacity. An exit whose plate has no earlier open entry is flagged ``exit_without_entry``.

**Voids and corrections** (数据纠正/作废): a passage with ``void_of`` voids that passage
(whichever arrives first); voided passages neither count nor make stays. A correction is a
new passage with ``void_of`` the wrong one.

**Stays.** Within a lot, each exit is linked to the latest open entry of the same plate hash
before it; ``stay_s`` is the time between. Links are recomputed for the plates a batch
touched, so late entries and voids re-link correctly. Hashes older than
``CITYPARK_PLATE_RETENTION_DAYS`` are cleared by :func:`purge_plates` (stays stay).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.occupancy.service import notify_facilities
from app.passages import sql
from app.passages.messages import PassageIn

COUNT_FLAGS = ("free_below_zero", "free_above_capacity")
LINK_FLAGS = ("exit_without_entry",)
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PassageResult:
    inserted: int
    duplicates: int
    voided: int


async def write_passages(conn: asyncpg.Connection, passages: Sequence[PassageIn],
                         *, counted_facilities: Sequence[str] = ()) -> PassageResult:
    """Store ``passages`` (duplicates once), apply voids, re-link stays, recount the touched lots
    and those of ``counted_facilities`` (gate counts of the same batch). In the caller's transaction."""
    rows = sorted({(p.facility_id, p.passage_id): p for p in passages}.values(),
                  key=lambda p: (p.facility_id, p.passage_id))
    new = []
    if rows:
        cols = [[getattr(p, f) for p in rows] for f in
                ("facility_id", "passage_id", "direction", "observed_at", "lane", "plate_hash", "void_of", "source")]
        new = await conn.fetch(sql.INSERT, *cols)
    new_ids = [r["id"] for r in new]
    voided = await conn.fetch(sql.APPLY_VOIDS, new_ids) if new_ids else []
    plates = {(r["facility_id"], r["plate_hash"]) for r in [*new, *voided] if r["plate_hash"] is not None}
    await relink(conn, plates)
    touched = {p.facility_id for p in passages} | set(counted_facilities)
    await recount(conn, sorted(touched))
    return PassageResult(len(new), len(passages) - len(new), len(voided))


async def relink(conn: asyncpg.Connection, plates: set[tuple[str, bytes]]) -> None:
    """Pair exits with entries for these (facility, plate hash) pairs, from scratch."""
    if not plates:
        return
    keys = sorted(plates)
    rows = await conn.fetch(sql.PLATE_PASSAGES, [k[0] for k in keys], [k[1] for k in keys])
    changes = []
    open_entries: dict[tuple[str, bytes], list[Any]] = {}
    for r in rows:
        entry_id, stay_s, exit_alone = None, None, False
        if r["voided_by"] is None:
            stack = open_entries.setdefault((r["facility_id"], r["plate_hash"]), [])
            if r["direction"] == "in":
                stack.append(r)
            elif stack:
                entry = stack.pop()
                entry_id, stay_s = entry["id"], int((r["observed_at"] - entry["observed_at"]).total_seconds())
            else:
                exit_alone = True
        flags = [f for f in r["flags"] if f not in LINK_FLAGS] + (["exit_without_entry"] if exit_alone else [])
        if (entry_id, stay_s, flags) != (r["entry_id"], r["stay_s"], list(r["flags"])):
            changes.append((r["id"], entry_id, stay_s, ",".join(flags)))
    if changes:
        await conn.execute(sql.SET_LINKS, *[list(c) for c in zip(*changes, strict=True)])


async def recount(conn: asyncpg.Connection, facility_ids: Sequence[str]) -> None:
    """Recompute the free count of those lots that have passages: newest count + passages since."""
    if not facility_ids:
        return
    with_passages = [r[0] for r in await conn.fetch(sql.WITH_PASSAGES, list(facility_ids))]
    if not with_passages:
        return
    capacity = {r["id"]: r["capacity"] for r in await conn.fetch(sql.LOCK_FACILITIES, with_passages)}
    base = {r["facility_id"]: r for r in await conn.fetch(sql.BASE_COUNTS, with_passages)}
    upserts = []
    for fid in sorted(capacity):
        cap = capacity[fid]
        free, at = (base[fid]["free"], base[fid]["observed_at"]) if fid in base else (cap, NEVER)
        free, last = await _walk(conn, fid, free, at, cap)
        upserts.append((fid, max(0, min(cap, free)), cap, max(at, last), "passages"))
    await conn.execute(sql.UPSERT_COUNT, *[list(c) for c in zip(*upserts, strict=True)])
    await notify_facilities(conn, [u[0] for u in upserts])  # the change feed, as count messages send it


async def _walk(conn: asyncpg.Connection, facility_id: str, free: int, since: datetime,
                capacity: int) -> tuple[int, datetime]:
    """Apply the passages after ``since`` in time order; flag the ones that leave 0..capacity."""
    changes, last = [], since
    for r in await conn.fetch(sql.SINCE_BASE, facility_id, since):
        free += 1 if r["direction"] == "out" else -1
        last = r["observed_at"]
        extra = ["free_below_zero"] if free < 0 else ["free_above_capacity"] if free > capacity else []
        flags = [f for f in r["flags"] if f not in COUNT_FLAGS] + extra
        if (free, flags) != (r["free_after"], list(r["flags"])):
            changes.append((r["id"], free, ",".join(flags)))
    if changes:
        await conn.execute(sql.SET_FREE_AFTER, *[list(c) for c in zip(*changes, strict=True)])
    return free, last


async def purge_plates(conn: asyncpg.Connection, *, retention_days: int, now: datetime | None = None) -> int:
    """Clear the plate hashes of passages older than the retention; returns how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    status = await conn.execute(sql.PURGE_PLATES, cutoff)
    return int(status.rsplit(" ", 1)[-1])


@dataclass(frozen=True, slots=True)
class Stay:
    facility_id: str
    entered_at: datetime
    left_at: datetime
    stay_s: int


async def stays(conn: asyncpg.Connection, *, facility_ids: Sequence[str], since: datetime,
                until: datetime) -> list[Stay]:
    """Linked stays (entry → exit of one plate hash) that ended in ``[since, until)``: the stay
    durations of counted lots, for utilization and the lots' time limits. Stays outlive the
    plate hashes that made them."""
    rows = await conn.fetch(sql.STAYS, list(facility_ids), since, until)
    return [Stay(r["facility_id"], r["entered_at"], r["left_at"], r["stay_s"]) for r in rows]
