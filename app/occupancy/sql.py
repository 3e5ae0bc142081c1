"""The set-based statements behind ``occupancy.write_batch`` (about one statement per table and batch).

Every statement takes whole columns as arrays (``unnest``) and locks rows in key order, so two
ingest workers writing overlapping spaces or sensors wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from app.occupancy.messages import Count, Heartbeat, Occupancy

INSERT_HISTORY = """
INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, battery_v, source)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::text[], $5::bool[],
                     $6::float8[], $7::text[])
ON CONFLICT (sensor_id, observed_at, seq) DO NOTHING
"""

# Locks the batch's spaces in key order and reads what they hold; Python then decides per space
# (a newer (observed_at, seq) wins; ``since`` keeps the spell's start unless the value flips).
LOCK_STATES = """
SELECT space_id, occupied, since, observed_at, seq FROM space_state
WHERE space_id = ANY($1::text[]) ORDER BY space_id FOR UPDATE
"""

STATE_COLUMNS = """unnest($1::text[], $2::bool[], $3::timestamptz[], $4::timestamptz[], $5::int8[],
                  $6::timestamptz[], $7::text[]) AS v(space_id, occupied, since, observed_at, seq, last_seen, source)"""

UPDATE_STATES = f"""
UPDATE space_state s SET occupied = v.occupied, since = v.since, observed_at = v.observed_at, seq = v.seq,
    last_seen = GREATEST(s.last_seen, v.last_seen), source = v.source
FROM {STATE_COLUMNS}
WHERE s.space_id = v.space_id
"""

# Spaces without a state row yet (the importer makes one for every space, so this is rare).
INSERT_STATES = f"""
INSERT INTO space_state AS s (space_id, occupied, since, observed_at, seq, last_seen, source)
SELECT v.* FROM {STATE_COLUMNS} JOIN spaces sp ON sp.id = v.space_id
ON CONFLICT (space_id) DO UPDATE SET
    occupied = excluded.occupied, since = excluded.since, observed_at = excluded.observed_at,
    seq = excluded.seq, last_seen = GREATEST(s.last_seen, excluded.last_seen), source = excluded.source
WHERE s.observed_at IS NULL
   OR (excluded.observed_at, COALESCE(excluded.seq, -1)) > (s.observed_at, COALESCE(s.seq, -1))
"""

# A late event (older than the stored state) may start or split the current spell: ``since``
# is then recomputed from history.
FIX_SINCE = """
UPDATE space_state s SET since = f.since
FROM (
    SELECT st.space_id, (
        SELECT min(e.observed_at) FROM occupancy_events e
        WHERE e.space_id = st.space_id AND e.observed_at <= st.observed_at
          AND e.observed_at > COALESCE((
              SELECT max(o.observed_at) FROM occupancy_events o
              WHERE o.space_id = st.space_id AND o.occupied <> st.occupied
                AND o.observed_at <= st.observed_at), '-infinity')
    ) AS since
    FROM space_state st WHERE st.space_id = ANY($1::text[]) AND st.occupied IS NOT NULL
) f
WHERE s.space_id = f.space_id AND f.since IS NOT NULL AND s.since IS DISTINCT FROM f.since
"""

TOUCH_SPACES = """
UPDATE space_state s SET last_seen = v.seen
FROM unnest($1::text[], $2::timestamptz[]) AS v(space_id, seen)
WHERE s.space_id = v.space_id AND (s.last_seen IS NULL OR s.last_seen < v.seen)
"""

LOCK_SENSORS = "SELECT id FROM sensors WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"

UPDATE_SENSORS = """
UPDATE sensors s SET
    last_seen = GREATEST(s.last_seen, v.seen),
    battery_v = CASE WHEN v.battery_v IS NOT NULL AND (s.last_seen IS NULL OR v.seen >= s.last_seen)
                     THEN v.battery_v ELSE s.battery_v END,
    rssi_dbm = CASE WHEN v.rssi_dbm IS NOT NULL AND (s.last_seen IS NULL OR v.seen >= s.last_seen)
                    THEN v.rssi_dbm ELSE s.rssi_dbm END
FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[]) AS v(id, seen, battery_v, rssi_dbm)
WHERE s.id = v.id
"""

INSERT_COUNTS = """
INSERT INTO count_events (facility_id, observed_at, free, total, source)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int4[], $4::int4[], $5::text[])
ON CONFLICT (facility_id, observed_at) DO NOTHING
"""

UPSERT_FACILITY_COUNTS = """
INSERT INTO facility_counts AS f (facility_id, free, total, observed_at, last_seen, source)
SELECT v.facility_id, v.free, v.total, v.observed_at, v.observed_at, v.source
FROM unnest($1::text[], $2::int4[], $3::int4[], $4::timestamptz[], $5::text[])
    AS v(facility_id, free, total, observed_at, source)
JOIN facilities fa ON fa.id = v.facility_id
ORDER BY v.facility_id
ON CONFLICT (facility_id) DO UPDATE SET
    free = excluded.free, total = excluded.total, observed_at = excluded.observed_at,
    last_seen = GREATEST(f.last_seen, excluded.last_seen), source = excluded.source
WHERE f.observed_at IS NULL OR excluded.observed_at > f.observed_at
"""

# Retention of rejected messages: oldest first, a bounded number of rows a statement, so a
# large backlog never holds one long transaction (the index on received_at serves both parts).
PURGE_REJECTIONS = """
DELETE FROM rejected_messages WHERE id IN (
    SELECT id FROM rejected_messages WHERE received_at < $1 ORDER BY received_at LIMIT $2)
"""

INSERT_REJECTIONS = """
INSERT INTO rejected_messages (topic, payload, reason, source)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
"""


def _rowcount(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def insert_history(conn: asyncpg.Connection, events: Sequence[Occupancy]) -> int:
    """Append occupancy events (sorted by identity); returns how many were new."""
    if not events:
        return 0
    rows = sorted(((e.sensor_id, e.observed_at, e.seq, e.space_id, e.occupied, e.battery_v, e.source)
                   for e in events), key=lambda r: (r[0], r[1], -1 if r[2] is None else r[2]))
    return _rowcount(await conn.execute(INSERT_HISTORY, *_columns(rows, 7)))


async def upsert_space_state(conn: asyncpg.Connection, events: Sequence[Occupancy],
                             beats: Sequence[Heartbeat]) -> list[str]:
    """Move each space to its newest event; returns the ids whose ``occupied`` value changed."""
    touched = {e.space_id: e.observed_at for e in beats if e.space_id}
    spells = _spells(events)
    if not spells and not touched:
        return []
    old = {r["space_id"]: r for r in await conn.fetch(LOCK_STATES, sorted(touched.keys() | spells.keys()))}
    updates, inserts, changed, late = [], [], [], []
    for space_id in sorted(spells):
        occupied, observed_at, seq, start, oldest, source = spells[space_id]
        prev = old.get(space_id)
        row = (space_id, occupied, start, observed_at, seq, observed_at, source)
        if prev is None:
            inserts.append(row)
            changed.append(space_id)
            continue
        if prev["observed_at"] is not None and oldest < prev["observed_at"]:
            late.append(space_id)
        if prev["observed_at"] is None or (observed_at, _seq(seq)) > (prev["observed_at"], _seq(prev["seq"])):
            if prev["occupied"] == occupied and prev["since"] is not None:
                row = (space_id, occupied, prev["since"], observed_at, seq, observed_at, source)
            updates.append(row)
            if prev["occupied"] is not occupied:
                changed.append(space_id)
    await _write_states(conn, updates, inserts, late)
    if touched:
        await conn.execute(TOUCH_SPACES, *_columns(sorted(touched.items()), 2))
    return changed


async def _write_states(conn: asyncpg.Connection, updates: list[tuple[Any, ...]],
                        inserts: list[tuple[Any, ...]], late: list[str]) -> None:
    if updates:
        await conn.execute(UPDATE_STATES, *_columns(updates, 7))
    if inserts:
        await conn.execute(INSERT_STATES, *_columns(inserts, 7))
    if late:
        await conn.execute("SET LOCAL jit = off")  # JIT would compile this many-partition plan for seconds
        await conn.execute(FIX_SINCE, late)


def _seq(seq: int | None) -> int:
    return -1 if seq is None else seq


def _spells(events: Sequence[Occupancy]) -> dict[str, tuple[Any, ...]]:
    """Per space: newest event, the start of its spell within the batch, and the oldest event."""
    by_space: dict[str, list[Occupancy]] = {}
    for e in events:
        by_space.setdefault(e.space_id, []).append(e)
    out: dict[str, tuple[Any, ...]] = {}
    for space_id, evs in by_space.items():
        evs.sort(key=lambda e: (e.observed_at, -1 if e.seq is None else e.seq))
        newest = evs[-1]
        start = newest.observed_at
        for e in reversed(evs):
            if e.occupied != newest.occupied:
                break
            start = e.observed_at
        out[space_id] = (newest.occupied, newest.observed_at, newest.seq, start, evs[0].observed_at, newest.source)
    return out


async def update_sensors(conn: asyncpg.Connection, events: Sequence[Occupancy | Heartbeat]) -> None:
    """``last_seen`` (newest message), ``battery_v`` and ``rssi_dbm`` (newest that carries them)."""
    latest: dict[str, list[Any]] = {}
    for e in sorted(events, key=lambda e: e.observed_at):
        row = latest.setdefault(e.sensor_id, [e.sensor_id, e.observed_at, None, None])
        row[1] = e.observed_at
        row[2] = e.battery_v if e.battery_v is not None else row[2]
        row[3] = getattr(e, "rssi_dbm", None) if getattr(e, "rssi_dbm", None) is not None else row[3]
    if not latest:
        return
    ids = sorted(latest)
    await conn.execute(LOCK_SENSORS, ids)
    await conn.execute(UPDATE_SENSORS, *_columns([tuple(latest[i]) for i in ids], 4))


async def write_counts(conn: asyncpg.Connection, counts: Sequence[Count]) -> int:
    """Append gate counts and move each facility's current count to its newest one."""
    if not counts:
        return 0
    rows = sorted((c.facility_id, c.observed_at, c.free, c.total, c.source) for c in counts)
    inserted = _rowcount(await conn.execute(INSERT_COUNTS, *_columns(rows, 5)))
    newest: dict[str, tuple[str, int, int | None, datetime, str]] = {}
    for fid, at, free, total, source in rows:  # sorted by time within a facility: last wins
        newest[fid] = (fid, free, total, at, source)
    await conn.execute(UPSERT_FACILITY_COUNTS, *_columns([newest[f] for f in sorted(newest)], 5))
    return inserted


async def insert_rejections(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str, str]]) -> None:
    """Store rejected messages: (topic, payload, reason, source) tuples."""
    if rows:
        await conn.execute(INSERT_REJECTIONS, *_columns(rows, 4))
