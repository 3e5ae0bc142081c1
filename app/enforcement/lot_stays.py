"""Overstays in gate-counted lots, from the stays their passages make (``app.passages``).

A lot that counts at the gate has no per-space sensors, so its time limits (facility rules of
kind ``time_limit``) are checked on the stays that plate-hash-linked passages make: an entry
and the exit linked to it (``passages.entry_id``, ``stay_s``). Each entry is one stay for the
pure engine (``engine.evaluate``: an ``occupied`` event at the entry, a ``free`` one at the
exit), with the same semantics as spaces — windows, the limit counted from the later of entry
and window start, one violation per window:

- an entry with no exit yet is a stay still going on while the lot is heard from (its count
  or passages within ``stale_after_s``), else known until it was last heard from; only entries
  with a plate hash can become one (without a plate nothing would ever close it);
- voided entries and exits (``void_of``) make no stays, and their violations are deleted;
- a violation names its entry passage (``entry_passage_id``, no ``space_id``) and stands at
  the lot's ``ST_PointOnSurface``; ``(entry_passage_id, kind, stay_since)`` keys it, so re-runs
  never duplicate.

Each pass re-evaluates the entries of the last ``OPEN_BACK`` that are still open or whose exit is
within ``RECENT`` (older stays were settled by earlier passes). Services only flush.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.enforcement import engine

OPEN_BACK = timedelta(days=7)  # an entry older than this with no exit is no longer looked at
RECENT = timedelta(days=1)  # completed stays are re-evaluated this long after their exit

_ENTRIES_SQL = """
WITH lots AS (
    SELECT DISTINCT facility_id AS id FROM parking_rules WHERE facility_id IS NOT NULL AND kind = 'time_limit'
)
SELECT i.id, i.facility_id, i.observed_at AS entered_at, o.observed_at AS left_at,
       (i.voided_by IS NOT NULL OR (i.plate_hash IS NULL AND o.id IS NULL)) AS skip,
       greatest(fc.last_seen, (SELECT max(observed_at) FROM passages p WHERE p.facility_id = i.facility_id))
           AS last_seen
FROM passages i JOIN lots ON lots.id = i.facility_id
LEFT JOIN passages o ON o.entry_id = i.id AND o.voided_by IS NULL
LEFT JOIN facility_counts fc ON fc.facility_id = i.facility_id
WHERE i.direction = 'in' AND i.observed_at >= :open_since
  AND (o.id IS NULL OR o.observed_at >= :recent_since)
"""

_RULES_SQL = """
SELECT facility_id, id, kind, day_mask, start_time, end_time, max_stay_minutes, timezone
FROM parking_rules WHERE facility_id = ANY(CAST(:ids AS text[])) AND kind = 'time_limit'
"""

_DELETE_SQL = """
DELETE FROM violations v
WHERE v.entry_passage_id = ANY(CAST(:entries AS bigint[]))
  AND (v.entry_passage_id, v.kind, v.stay_since) NOT IN (
      SELECT * FROM unnest(CAST(:keep_entry AS bigint[]), CAST(:keep_kind AS text[]),
                           CAST(:keep_since AS timestamptz[])))
"""

_UPSERT_SQL = """
INSERT INTO violations (space_id, entry_passage_id, facility_id, rule_id, kind, stay_since, started_at,
                        ended_at, limit_minutes, geom)
SELECT NULL, v.entry, f.id, v.rule_id, v.kind, v.stay_since, v.started_at, v.ended_at, v.lim,
       ST_PointOnSurface(f.geom)
FROM unnest(CAST(:entry AS bigint[]), CAST(:facility AS text[]), CAST(:rule AS bigint[]), CAST(:kind AS text[]),
            CAST(:since AS timestamptz[]), CAST(:started AS timestamptz[]), CAST(:ended AS timestamptz[]),
            CAST(:lim AS int[])) AS v(entry, facility_id, rule_id, kind, stay_since, started_at, ended_at, lim)
JOIN facilities f ON f.id = v.facility_id
ON CONFLICT ON CONSTRAINT uq_violations_lot_stay DO UPDATE SET
    rule_id = EXCLUDED.rule_id, started_at = EXCLUDED.started_at,
    ended_at = EXCLUDED.ended_at, limit_minutes = EXCLUDED.limit_minutes
WHERE (violations.rule_id, violations.started_at, violations.ended_at, violations.limit_minutes)
      IS DISTINCT FROM (EXCLUDED.rule_id, EXCLUDED.started_at, EXCLUDED.ended_at, EXCLUDED.limit_minutes)
"""

Found = tuple[int, str, engine.Found]  # entry passage, facility, violation


async def detect(session: AsyncSession, *, now: datetime, settings: Settings) -> int:
    """Re-evaluate the recent stays of lots with time limits as of ``now``; how many violations stand."""
    entries = (await session.execute(text(_ENTRIES_SQL), {
        "open_since": now - OPEN_BACK, "recent_since": now - RECENT})).mappings().all()
    if not entries:
        return 0
    rules = await _rules(session, sorted({e["facility_id"] for e in entries}))
    found: list[Found] = []
    for e in entries:
        if e["skip"]:
            continue
        history = [engine.Event(e["entered_at"], True)]
        if e["left_at"] is not None:
            history.append(engine.Event(e["left_at"], False))
        result = engine.evaluate(history, rules.get(e["facility_id"], []), now=now, last_seen=e["last_seen"],
                                 stale_after=timedelta(seconds=settings.stale_after_s))
        found += [(e["id"], e["facility_id"], f) for f in result.violations]
    await _write(session, [e["id"] for e in entries], found)
    return len(found)


async def _rules(session: AsyncSession, facility_ids: list[str]) -> dict[str, list[engine.Rule]]:
    out: dict[str, list[engine.Rule]] = defaultdict(list)
    for row in (await session.execute(text(_RULES_SQL), {"ids": facility_ids})).mappings():
        start_min, minutes = engine.rule_window(row["start_time"], row["end_time"])
        out[row["facility_id"]].append(engine.Rule(row["id"], row["kind"], row["day_mask"], start_min, minutes,
                                                   row["max_stay_minutes"], "facility", row["timezone"]))
    return dict(out)


async def _write(session: AsyncSession, entries: list[int], found: list[Found]) -> None:
    keep = {"keep_entry": [e for e, _, _ in found], "keep_kind": [f.kind for _, _, f in found],
            "keep_since": [f.stay_since for _, _, f in found]}
    await session.execute(text(_DELETE_SQL), {"entries": entries, **keep})
    if found:
        await session.execute(text(_UPSERT_SQL), {
            "entry": keep["keep_entry"], "facility": [fid for _, fid, _ in found],
            "rule": [f.rule_id for _, _, f in found], "kind": keep["keep_kind"], "since": keep["keep_since"],
            "started": [f.started_at for _, _, f in found], "ended": [f.ended_at for _, _, f in found],
            "lim": [f.limit_minutes for _, _, f in found]})
    await session.flush()
