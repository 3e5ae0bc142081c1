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

# RETURNING: which events were new (the others are stored already: redeliveries or conflicts).
INSERT_HISTORY = """
INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, battery_v, source, received_at)
SELECT v.*, $8::timestamptz FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::text[], $5::bool[],
                     $6::float8[], $7::text[]) AS v
ON CONFLICT (sensor_id, observed_at, seq) DO NOTHING
RETURNING sensor_id, observed_at, seq
"""

# The stored twins of events that were not new: their payload (a different one is a conflicting
# duplicate) and when the first copy was received (the ordering key of a redelivered event).
STORED_EVENTS = """
SELECT v.i, e.occupied, e.battery_v, e.received_at
FROM unnest($1::text[], $2::timestamptz[], $3::int8[]) WITH ORDINALITY AS v(sensor_id, observed_at, seq, i)
JOIN occupancy_events e ON e.sensor_id = v.sensor_id AND e.observed_at = v.observed_at
    AND e.seq IS NOT DISTINCT FROM v.seq
"""

# Locks the batch's spaces in key order and reads what they hold; Python then decides per space
# (a newer (ordering key, seq) wins; ``since`` keeps the spell's start unless the value flips).
LOCK_STATES = """
SELECT space_id, occupied, since, observed_at, seq, source FROM space_state
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

# A late event (older than the stored state) may start or split the current spell. Per such space,
# within the window [lo, hi] (lo at or before both the old spell's start and the batch's oldest
# event, hi = the state's observed_at): the newest reading of the other value (``opposite``)
# and the first reading after it (or the window's first reading when there is none). Both are
# ordered scans of the (space_id, observed_at) index with run-time partition pruning on the
# window, so a probe touches one or two monthly partitions, not all of them.
SPELL_BOUNDS = """
SELECT v.space_id, p.t AS opposite, f.t AS first
FROM unnest($1::text[], $2::bool[], $3::timestamptz[], $4::timestamptz[]) AS v(space_id, occupied, lo, hi)
LEFT JOIN LATERAL (
    SELECT o.observed_at AS t FROM occupancy_events o
    WHERE o.space_id = v.space_id AND o.observed_at >= v.lo AND o.observed_at <= v.hi
      AND o.occupied <> v.occupied
    ORDER BY o.observed_at DESC LIMIT 1) p ON true
LEFT JOIN LATERAL (
    SELECT o.observed_at AS t FROM occupancy_events o
    WHERE o.space_id = v.space_id AND o.observed_at >= COALESCE(p.t + interval '1 microsecond', v.lo)
      AND o.observed_at <= v.hi
    ORDER BY o.observed_at LIMIT 1) f ON true
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


def identity(e: Occupancy) -> tuple[str, datetime, int | None]:
    """An event's identity: ``(sensor_id, observed_at, seq)``."""
    return (e.sensor_id, e.observed_at, e.seq)


async def insert_history(conn: asyncpg.Connection, events: Sequence[Occupancy], received_at: datetime,
                         ) -> set[tuple[str, datetime, int | None]] | None:
    """Append occupancy events (sorted by identity); returns the identities that were new, or
    None when all were (the common case, without building the set)."""
    if not events:
        return None
    rows = sorted(((e.sensor_id, e.observed_at, e.seq, e.space_id, e.occupied, e.battery_v, e.source)
                   for e in events), key=lambda r: (r[0], r[1], -1 if r[2] is None else r[2]))
    new = await conn.fetch(INSERT_HISTORY, *_columns(rows, 7), received_at)
    return None if len(new) == len(rows) else {(r[0], r[1], r[2]) for r in new}


async def stored_events(conn: asyncpg.Connection, events: Sequence[Occupancy]) -> list[asyncpg.Record | None]:
    """Per event (same order): its stored row's ``occupied``, ``battery_v``, ``received_at``."""
    if not events:
        return []
    found = {r["i"]: r for r in await conn.fetch(
        STORED_EVENTS, [e.sensor_id for e in events], [e.observed_at for e in events], [e.seq for e in events])}
    return [found.get(i + 1) for i in range(len(events))]


Ranked = tuple["Occupancy", datetime]  # an event and its ordering key, min(observed_at, received_at)


async def upsert_space_state(conn: asyncpg.Connection, events: Sequence[Ranked],
                             beats: Sequence[tuple[str, datetime]]) -> list[str]:
    """Move each space to its newest event; returns the ids whose ``occupied`` value changed.

    ``events``: (event, ordering key); ``beats``: (space id, when) of heartbeats (``last_seen``).
    Newest = the greatest (key, seq); the key is what ``space_state.observed_at`` holds.
    """
    touched: dict[str, datetime] = {}
    for space_id, seen in beats:
        touched[space_id] = max(seen, touched.get(space_id, seen))
    spaces = _by_space(events)
    if not spaces and not touched:
        return []
    old = {r["space_id"]: r for r in await conn.fetch(LOCK_STATES, sorted(touched.keys() | spaces.keys()))}
    rows: dict[str, list[Any]] = {}
    inserts, changed, late = [], [], []
    for space_id in sorted(spaces):
        evs = spaces[space_id]
        prev = old.get(space_id)
        if prev is None:
            newest, at_ = evs[-1]
            inserts.append((space_id, newest.occupied, evs[_run_start(evs)][1], at_, newest.seq, at_,
                            newest.source))
            changed.append(space_id)
            continue
        prev_key = None if prev["observed_at"] is None else (prev["observed_at"], _seq(prev["seq"]))
        n_older = 0
        if prev_key is not None and (evs[0][1], _seq(evs[0][0].seq)) <= prev_key:  # some are late
            n_older = sum(1 for e, key in evs if (key, _seq(e.seq)) <= prev_key)
        older, newer = evs[:n_older], evs[n_older:]
        if newer:
            newest, at_ = newer[-1]
            first = _run_start(newer)
            # The old spell goes on only if nothing of the other value came after it.
            goes_on = first == 0 and prev["occupied"] == newest.occupied and prev["since"] is not None
            rows[space_id] = [space_id, newest.occupied, prev["since"] if goes_on else newer[first][1], at_,
                              newest.seq, at_, newest.source]
            if prev["occupied"] is not newest.occupied:
                changed.append(space_id)
        row = rows.get(space_id) or [space_id, prev["occupied"], prev["since"], prev["observed_at"],
                                     prev["seq"], prev["observed_at"], prev["source"]]
        if older and row[1] is not None and _may_move_since(older, row[1], row[2]):
            late.append((row, min(older[0][1], prev["since"] or prev["observed_at"])))
    if late:
        await _fix_spells(conn, late, rows)
    if rows:
        await conn.execute(UPDATE_STATES, *_columns([tuple(rows[k]) for k in sorted(rows)], 7))
    if inserts:
        await conn.execute(INSERT_STATES, *_columns(inserts, 7))
    if touched:
        await conn.execute(TOUCH_SPACES, *_columns(sorted(touched.items()), 2))
    return changed


async def _fix_spells(conn: asyncpg.Connection, late: list[tuple[list[Any], datetime]],
                      rows: dict[str, list[Any]]) -> None:
    """A late event may start or split the current spell: ``since`` from history (SPELL_BOUNDS)."""
    await conn.execute("SET LOCAL jit = off")  # JIT would compile this many-partition plan for seconds
    bounds = {r["space_id"]: r for r in await conn.fetch(
        SPELL_BOUNDS, [row[0] for row, _ in late], [row[1] for row, _ in late], [lo for _, lo in late],
        [row[3] for row, _ in late])}
    for row, _ in late:
        b = bounds[row[0]]
        if b["opposite"] is not None:  # the spell began with the first reading after the other value
            since = b["first"] or row[2]
        else:  # no other value in the window: it began at the window's first reading, or before
            known = [t for t in (b["first"], row[2]) if t is not None]
            since = min(known) if known else None
        if since is not None and since != row[2]:
            row[2] = since
            rows[row[0]] = row


def _run_start(evs: Sequence[Ranked]) -> int:
    """Index of the first event of the trailing run that shares the last event's value."""
    first = len(evs) - 1
    while first > 0 and evs[first - 1][0].occupied == evs[-1][0].occupied:
        first -= 1
    return first


def _may_move_since(older: Sequence[Ranked], occupied: bool, since: datetime | None) -> bool:
    """Whether late readings can move the spell's start: one of the spell's value before it
    (may extend it back) or of the other value inside it (splits it). Others change nothing."""
    if since is None:
        return True
    return any((e.occupied == occupied) == (key < since) for e, key in older)


def _seq(seq: int | None) -> int:
    return -1 if seq is None else seq


def _by_space(events: Sequence[Ranked]) -> dict[str, list[Ranked]]:
    """The batch's events per space, oldest first by (ordering key, seq, observed_at)."""
    by_space: dict[str, list[Ranked]] = {}
    for item in events:
        by_space.setdefault(item[0].space_id, []).append(item)
    for evs in by_space.values():
        if len(evs) > 1:
            evs.sort(key=lambda r: (r[1], _seq(r[0].seq), r[0].observed_at))
    return by_space


async def update_sensors(conn: asyncpg.Connection, reports: Sequence[tuple[Occupancy | Heartbeat, datetime]]) -> None:
    """``last_seen`` (newest message), ``battery_v`` and ``rssi_dbm`` (newest that carries them).

    ``reports``: (event, when it counts as seen: min(observed_at, received_at)).
    """
    latest: dict[str, list[Any]] = {}
    for e, seen in sorted(reports, key=lambda r: r[1]):
        row = latest.setdefault(e.sensor_id, [e.sensor_id, seen, None, None])
        row[1] = seen
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
