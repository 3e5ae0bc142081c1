"""The one write path for sensor input: MQTT ingest and the operator HTTP pushes.

Messages are decoded and validated by :mod:`app.occupancy.messages`; ``write_batch(conn, events,
rejections=...)`` writes a whole batch in the caller's transaction with set-based statements:
history with ``unnest`` inserts ``ON CONFLICT DO NOTHING`` (an event is identified by
``(sensor_id, observed_at, seq)``, so re-deliveries are no-ops), one set-based update of
``space_state`` (its rows locked and read first, in key order; a newer ``(observed_at, seq)``
wins; ``since`` is the start of the current occupied/free spell, recomputed from history when a
late event lands inside it), sensor ``last_seen``, ``battery_v`` and ``rssi_dbm`` (heartbeats
and battery reports), gate counts into ``count_events`` + ``facility_counts``, and rejected
messages. Rows are locked in key order so concurrent workers do not deadlock.

**Notifications.** After the batch's transaction commits, PostgreSQL delivers
``NOTIFY space_state`` with a JSON array of the space ids whose ``occupied`` value changed in that
batch (``["zqgc-lot-001", "s51-04-003"]``). A batch normally sends one notification; a very
large change set is split into several arrays of under 7,500 bytes each. Listeners re-read
``space_state`` for those ids (the payload carries no state, so a late listener is never wrong).

``NOTIFY facility_state`` does the same for gate-counted facilities: a JSON array of the facility
ids whose count a batch wrote (count messages here; passages and voids by ``app.passages``
after their recount), so NGSI-LD subscriptions on ``availableSpotNumber`` and the API's caches
follow counted lots as they follow sensors (:func:`notify_facilities`).

**Staleness is computed by readers, not stored.** A space's status is ``unknown`` when its
``space_state.occupied`` is NULL or its ``last_seen`` (any message from its sensor, occupancy
or heartbeat) is older than ``settings.stale_after_s``; never ``free``: the one rule of
:mod:`app.occupancy.staleness`, which every reader uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.core.settings import Settings
from app.occupancy import sql
from app.occupancy.messages import (
    Count,
    Directory,
    Event,
    Heartbeat,
    Occupancy,
    Rejected,
    Rejection,
    parse_message,
    validate,
)

STORED_PAYLOAD_CHARS = 2000
NOTIFY_CHANNEL = "space_state"
FACILITY_CHANNEL = "facility_state"  # facilities whose gate count moved (counts, passages, voids)
NOTIFY_MAX_BYTES = 7500
CONFLICTING_DUPLICATE = "conflicting_duplicate"



@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch changed: new history rows, new counts, rejections, spaces whose state flipped."""

    history_inserted: int
    counts_inserted: int
    rejected: int
    changed_spaces: list[str]
    conflicts: int = 0  # occupancy events refused as ``conflicting_duplicate`` (counted in ``rejected``)


async def write_batch(conn: asyncpg.Connection, events: Sequence[Event], *,
                      rejections: Sequence[Rejection] = (), notify: bool = True,
                      origins: Mapping[Event, tuple[str, bytes | str]] | None = None,
                      received_at: datetime | None = None, record_conflicts: bool = True) -> BatchResult:
    """Write a batch (history, state, sensors, counts, rejections) in the caller's transaction.

    Idempotent: writing the same events again changes nothing. An occupancy event whose identity
    ``(sensor_id, observed_at, seq)`` is taken by a stored (or earlier in the batch) event with a
    different payload is not a duplicate: it goes to ``rejected_messages`` as
    ``conflicting_duplicate`` (``origins`` maps events to the topic and payload they came in;
    without it the event itself is stored as the payload). Current state orders readings by
    ``min(observed_at, received_at)`` (``received_at``: now, or when a redelivered event was first
    received), so a reading stamped ahead of the clock cannot hide later ones. The caller
    commits; on a deadlock or serialization failure (``asyncpg.exceptions.DeadlockDetectedError``)
    the caller rolls back and retries the whole batch. ``NOTIFY space_state`` is sent when ``notify``.
    """
    now = received_at or datetime.now(UTC)
    occ, conflicts = _dedupe_occupancy([e for e in events if isinstance(e, Occupancy)])
    counts = _dedupe([e for e in events if isinstance(e, Count)], lambda e: (e.facility_id, e.observed_at))
    beats = [e for e in events if isinstance(e, Heartbeat)]
    new = await sql.insert_history(conn, occ, now)  # None: all of them were new
    if new is None:
        ranked: list[sql.Ranked] = [(e, min(e.observed_at, now)) for e in occ]
        stored: list[Occupancy] = []
    else:
        ranked = [(e, min(e.observed_at, now)) for e in occ if sql.identity(e) in new]
        stored = [e for e in occ if sql.identity(e) not in new]
    for e, twin in zip(stored, await sql.stored_events(conn, stored), strict=True):
        if twin is not None and (twin["occupied"], twin["battery_v"]) != (e.occupied, e.battery_v):
            conflicts.append((e, f"the stored {_payload(twin['occupied'], twin['battery_v'])}"))
        else:  # a redelivery: ordered as when it first came, so it moves nothing again
            ranked.append((e, min(e.observed_at, twin["received_at"] if twin is not None else now)))
    changed = await sql.upsert_space_state(
        conn, ranked, [(b.space_id, min(b.observed_at, now)) for b in beats if b.space_id])
    # Sensor rows move on heartbeats and battery reports; every occupancy message already
    # moves space_state.last_seen, which is what staleness reads.
    await sql.update_sensors(conn, [*[(e, at) for e, at in ranked if e.battery_v is not None],
                                    *[(b, min(b.observed_at, now)) for b in beats]])
    n_counts = await sql.write_counts(conn, counts)
    refused = [_conflict(e, why, origins) for e, why in conflicts] if record_conflicts else []
    await sql.insert_rejections(conn, [_stored(r) for r in [*rejections, *refused]])
    if notify and changed:
        await conn.execute("SELECT pg_notify($1, c) FROM unnest($2::text[]) AS c",
                           NOTIFY_CHANNEL, _notify_chunks(changed))
    if notify and counts:
        await notify_facilities(conn, sorted({c.facility_id for c in counts}))
    inserted = len(occ) if new is None else len(new)
    return BatchResult(inserted, n_counts, len(rejections) + len(refused), changed, len(conflicts))


async def notify_facilities(conn: asyncpg.Connection, facility_ids: Sequence[str]) -> None:
    """``NOTIFY facility_state`` (delivered at commit) with these facility ids."""
    if facility_ids:
        await conn.execute("SELECT pg_notify($1, c) FROM unnest($2::text[]) AS c",
                           FACILITY_CHANNEL, _notify_chunks(list(facility_ids)))


def _dedupe(items: list[Any], key: Any) -> list[Any]:
    seen: dict[Any, Any] = {}
    for item in items:
        seen.setdefault(key(item), item)
    return list(seen.values())


def _dedupe_occupancy(events: list[Occupancy]) -> tuple[list[Occupancy], list[tuple[Occupancy, str]]]:
    """One event per identity (the first); a later one with another payload is a conflict."""
    seen: dict[tuple[Any, ...], Occupancy] = {}
    conflicts: list[tuple[Occupancy, str]] = []
    for e in events:
        first = seen.setdefault(sql.identity(e), e)
        if first is not e and (first.occupied, first.battery_v) != (e.occupied, e.battery_v):
            conflicts.append((e, f"{_payload(first.occupied, first.battery_v)} earlier in the batch"))
    return list(seen.values()), conflicts


def _conflict(e: Occupancy, why: str, origins: Mapping[Event, tuple[str, bytes | str]] | None) -> Rejection:
    topic, payload = (origins or {}).get(e) or (f"sensors/{e.sensor_id}/occupancy", orjson.dumps(
        {"occupied": e.occupied, "observed_at": e.observed_at.isoformat(), "seq": e.seq,
         "battery_v": e.battery_v}))
    seq = "no seq" if e.seq is None else f"seq {e.seq}"
    return Rejection(topic, payload, f"{CONFLICTING_DUPLICATE}: {e.sensor_id} at {e.observed_at.isoformat()} "
                                     f"({seq}) {_payload(e.occupied, e.battery_v)} conflicts with {why}", e.source)


def _payload(occupied: bool, battery_v: float | None) -> str:
    return f"occupied={str(occupied).lower()}" + ("" if battery_v is None else f", battery_v={battery_v}")


def _stored(r: Rejection) -> tuple[str, str, str, str]:
    """Topic, payload (truncated, NUL-free text), reason, source."""
    raw = r.payload.decode("utf-8", "replace") if isinstance(r.payload, bytes) else r.payload
    return (_clean(r.topic, 500), _clean(raw, STORED_PAYLOAD_CHARS), _clean(r.reason, 500), r.source)


def _clean(text: str, limit: int) -> str:
    return text[:limit].replace("\x00", "\\u0000")


def _notify_chunks(space_ids: list[str]) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 2
    for sid in space_ids:
        item = len(json.dumps(sid).encode()) + 1
        if current and size + item > NOTIFY_MAX_BYTES:
            chunks.append(json.dumps(current, separators=(",", ":")))
            current, size = [], 2
        current.append(sid)
        size += item
    return [*chunks, json.dumps(current, separators=(",", ":"))] if current else chunks


# --- the HTTP push endpoints --------------------------------------------------------------


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def push(session: AsyncSession, *, settings: Settings, operator_id: str,
               target: Literal["sensors", "facilities"], target_id: str, kind: str,
               body: Any) -> Event:
    """Validate and write one pushed message (the operator HTTP endpoints; the caller commits).

    ``body`` is the parsed JSON (or raw bytes). Raises ``NotFound`` (unknown sensor or facility),
    ``Forbidden`` (another operator's), ``InvalidInput`` (kind = the reason code) when the
    message is rejected, or ``Conflict`` (kind ``conflicting_duplicate``) when an event with its
    identity and another payload is stored; :func:`record_rejection` stores such a rejection if wanted.
    """
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    topic = "/".join((settings.mqtt_topic_root, operator_id, target, target_id, kind))
    conn = await driver_connection(session)
    try:
        message = parse_message(topic, payload, root=settings.mqtt_topic_root)
        directory = Directory()
        await directory.fetch(conn, **{"sensor_ids" if target == "sensors" else "facility_ids": [target_id]})
        event = validate(message, directory=directory, now=datetime.now(UTC),
                         max_clock_skew_s=settings.max_clock_skew_s, source="http")
    except Rejected as rej:
        raise rej.as_domain_error() from None
    result = await write_batch(conn, [event], record_conflicts=False)
    if result.conflicts:  # stored by the caller as the rejection of this push (409)
        raise Conflict(f"an event of {target_id} with this observed_at and seq and another payload is stored",
                       kind=CONFLICTING_DUPLICATE)
    return event


async def push_occupancy(session: AsyncSession, *, settings: Settings, operator_id: str,
                         sensor_id: str, body: Any) -> Event:
    """``POST /v1/operators/{op}/sensors/{id}/occupancy``: see :func:`push`."""
    return await push(session, settings=settings, operator_id=operator_id, target="sensors",
                      target_id=sensor_id, kind="occupancy", body=body)


async def push_count(session: AsyncSession, *, settings: Settings, operator_id: str,
                     facility_id: str, body: Any) -> Event:
    """``POST /v1/operators/{op}/facilities/{id}/count``: see :func:`push`."""
    return await push(session, settings=settings, operator_id=operator_id, target="facilities",
                      target_id=facility_id, kind="count", body=body)


async def record_rejection(session: AsyncSession, rejection: Rejection) -> None:
    """Store one rejection (e.g. of an HTTP push) in the session's transaction."""
    await sql.insert_rejections(await driver_connection(session), [_stored(rejection)])


async def purge_rejections(conn: asyncpg.Connection, *, retention_days: int, now: datetime | None = None,
                           chunk: int = 10_000) -> int:
    """Delete rejected messages received more than ``retention_days`` ago (``CITYPARK_REJECTED_
    RETENTION_DAYS``), ``chunk`` rows a statement; returns how many. Run outside a transaction."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    deleted = 0
    while True:
        n = sql._rowcount(await conn.execute(sql.PURGE_REJECTIONS, cutoff, chunk))
        deleted += n
        if n < chunk:
            return deleted
