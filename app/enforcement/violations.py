"""Violation detection against the database: re-run the pure engine where history changed.

The event history is the source of truth. ``detect`` loads a space's events back to the last
``free`` event before the earliest changed instant, runs ``rules_engine.evaluate`` on them,
upserts what it finds (``violations`` is unique on ``(space_id, kind, stay_since)``, so re-runs
and re-delivered events never duplicate) and deletes violations of that stretch the history no
longer supports (a late ``free`` event can split a stay). ``Sweep`` is the continuous loop's
state (``citypark enforce``): spaces whose events arrived since the last pass, spaces whose
open stays reach a limit as the clock runs, and everything again when the rules change.
Services only flush; the caller commits.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.enforcement import engine

HISTORY_BACK = timedelta(days=7)  # how far back a stay's start is looked for
LOCK_KEY = 0x63697479_7061726B  # "citypark": one detection pass at a time across processes

_RULES_SQL = """
SELECT s.id AS space_id, r.id, r.kind, r.day_mask, r.start_time, r.end_time, r.max_stay_minutes,
       r.timezone, 'space' AS level
FROM spaces s JOIN parking_rules r ON r.space_id = s.id WHERE s.id = ANY(CAST(:ids AS text[]))
UNION ALL
SELECT s.id, r.id, r.kind, r.day_mask, r.start_time, r.end_time, r.max_stay_minutes, r.timezone,
       'facility'
FROM spaces s JOIN parking_rules r ON r.facility_id = s.facility_id WHERE s.id = ANY(CAST(:ids AS text[]))
UNION ALL
SELECT s.id, r.id, r.kind, r.day_mask, r.start_time, r.end_time, r.max_stay_minutes, r.timezone, 'zone'
FROM spaces s JOIN parking_rules r ON r.zone IS NOT NULL AND ST_Covers(r.zone, s.geom)
WHERE s.id = ANY(CAST(:ids AS text[]))
"""

_HISTORY_SQL = """
WITH req AS (
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:froms AS timestamptz[])) AS r(space_id, from_at)
), b AS (
    SELECT req.space_id, coalesce((
        SELECT max(e.observed_at) FROM occupancy_events e
        WHERE e.space_id = req.space_id AND NOT e.occupied AND e.observed_at < req.from_at
          AND e.observed_at >= req.from_at - CAST(:back AS interval)
    ), req.from_at - CAST(:back AS interval)) AS boundary
    FROM req
)
SELECT b.space_id, b.boundary, st.last_seen, e.observed_at, e.seq, e.occupied
FROM b LEFT JOIN space_state st ON st.space_id = b.space_id
LEFT JOIN occupancy_events e ON e.space_id = b.space_id AND e.observed_at >= b.boundary
"""

_UPSERT_SQL = """
INSERT INTO violations (space_id, facility_id, rule_id, kind, stay_since, started_at, ended_at,
                        limit_minutes, geom)
SELECT f.space_id, s.facility_id, f.rule_id, f.kind, f.stay_since, f.started_at, f.ended_at,
       f.limit_minutes, s.geom
FROM unnest(CAST(:space AS text[]), CAST(:rule AS bigint[]), CAST(:kind AS text[]),
            CAST(:since AS timestamptz[]), CAST(:started AS timestamptz[]),
            CAST(:ended AS timestamptz[]), CAST(:lim AS int[]))
     AS f(space_id, rule_id, kind, stay_since, started_at, ended_at, limit_minutes)
JOIN spaces s ON s.id = f.space_id
ON CONFLICT ON CONSTRAINT uq_violations_stay DO UPDATE SET
    rule_id = EXCLUDED.rule_id, started_at = EXCLUDED.started_at,
    ended_at = EXCLUDED.ended_at, limit_minutes = EXCLUDED.limit_minutes
WHERE (violations.rule_id, violations.started_at, violations.ended_at, violations.limit_minutes)
      IS DISTINCT FROM (EXCLUDED.rule_id, EXCLUDED.started_at, EXCLUDED.ended_at, EXCLUDED.limit_minutes)
"""

_DELETE_SQL = """
DELETE FROM violations v
USING unnest(CAST(:ids AS text[]), CAST(:bounds AS timestamptz[])) AS b(space_id, boundary)
WHERE v.space_id = b.space_id AND v.stay_since >= b.boundary
  AND NOT EXISTS (
    SELECT 1 FROM unnest(CAST(:space AS text[]), CAST(:kind AS text[]), CAST(:since AS timestamptz[]))
         AS k(space_id, kind, stay_since)
    WHERE k.space_id = v.space_id AND k.kind = v.kind AND k.stay_since = v.stay_since)
"""

_RULED_SPACES_SQL = """
SELECT s.id FROM spaces s
WHERE ((s.no_parking
   OR EXISTS (SELECT 1 FROM parking_rules r WHERE r.space_id = s.id)
   OR EXISTS (SELECT 1 FROM parking_rules r WHERE r.facility_id = s.facility_id)
   OR EXISTS (SELECT 1 FROM parking_rules r WHERE r.zone IS NOT NULL AND ST_Covers(r.zone, s.geom)))
  AND (EXISTS (SELECT 1 FROM space_state st WHERE st.space_id = s.id AND st.occupied)
   OR EXISTS (SELECT 1 FROM occupancy_events e WHERE e.space_id = s.id AND e.observed_at >= :since)))
   OR EXISTS (SELECT 1 FROM violations v WHERE v.space_id = s.id AND v.ended_at IS NULL)
"""


@dataclass(frozen=True)
class Detected:
    spaces: int
    violations: int
    next_checks: dict[str, datetime]


async def detect(
    session: AsyncSession, *, changed: dict[str, datetime], now: datetime, settings: Settings
) -> Detected:
    """Re-evaluate each space of ``changed`` (space → earliest changed instant) as of ``now``."""
    if not changed:
        return Detected(0, 0, {})
    rules = await load_rules(session, space_ids=list(changed))
    histories, bounds, seen = await load_histories(session, changed=changed)
    found: dict[str, list[engine.Found]] = {}
    checks: dict[str, datetime] = {}
    for space_id, events in histories.items():
        result = engine.evaluate(
            events, rules.get(space_id, []), now=now, last_seen=seen.get(space_id),
            stale_after=timedelta(seconds=settings.stale_after_s),
            grace=timedelta(seconds=settings.no_parking_grace_s))
        found[space_id] = result.violations
        if result.next_check is not None:
            checks[space_id] = result.next_check
    await _write(session, found, bounds)
    return Detected(len(histories), sum(map(len, found.values())), checks)


async def load_rules(session: AsyncSession, *, space_ids: list[str]) -> dict[str, list[engine.Rule]]:
    """The rules applying to each space (its own, its facility's, covering zones, its flag)."""
    out: dict[str, list[engine.Rule]] = defaultdict(list)
    for row in (await session.execute(text(_RULES_SQL), {"ids": space_ids})).mappings():
        start_min, minutes = engine.rule_window(row["start_time"], row["end_time"])
        out[row["space_id"]].append(engine.Rule(
            row["id"], row["kind"], row["day_mask"], start_min, minutes,
            row["max_stay_minutes"], row["level"], row["timezone"]))
    flagged = await session.execute(
        text("SELECT id FROM spaces WHERE id = ANY(CAST(:ids AS text[])) AND no_parking"),
        {"ids": space_ids})
    for (space_id,) in flagged:
        out[space_id].append(engine.ALWAYS)
    return dict(out)


async def load_histories(
    session: AsyncSession, *, changed: dict[str, datetime]
) -> tuple[dict[str, list[engine.Event]], dict[str, datetime], dict[str, datetime]]:
    """Each space's events from the last free event before its changed instant; boundaries; last_seen."""
    rows = await session.execute(text(_HISTORY_SQL), {
        "ids": list(changed), "froms": list(changed.values()), "back": HISTORY_BACK})
    events: dict[str, list[engine.Event]] = defaultdict(list)
    bounds: dict[str, datetime] = {}
    seen: dict[str, datetime] = {}
    for space_id, boundary, last_seen, observed_at, seq, occupied in rows:
        bounds[space_id] = boundary
        if last_seen is not None:
            seen[space_id] = last_seen
        if observed_at is not None:
            events[space_id].append(engine.Event(observed_at, occupied, seq))
    return {s: events.get(s, []) for s in bounds}, bounds, seen


async def _write(
    session: AsyncSession, found: dict[str, list[engine.Found]], bounds: dict[str, datetime]
) -> None:
    flat = [(space_id, f) for space_id, items in found.items() for f in items]
    keys = {"space": [s for s, _ in flat], "kind": [f.kind for _, f in flat],
            "since": [f.stay_since for _, f in flat]}
    await session.execute(text(_DELETE_SQL), {"ids": list(bounds), "bounds": list(bounds.values()), **keys})
    if flat:
        await session.execute(text(_UPSERT_SQL), {
            **keys, "rule": [f.rule_id for _, f in flat], "started": [f.started_at for _, f in flat],
            "ended": [f.ended_at for _, f in flat], "lim": [f.limit_minutes for _, f in flat]})
    await session.flush()


async def changed_since(session: AsyncSession, *, after_id: int) -> tuple[dict[str, datetime], int]:
    """Spaces with events of id > ``after_id`` (→ earliest observed_at among them), and the max id."""
    rows = (await session.execute(text(
        "SELECT space_id, min(observed_at), max(id) FROM occupancy_events WHERE id > :after "
        "GROUP BY space_id"), {"after": after_id})).all()
    return {r[0]: r[1] for r in rows}, max((r[2] for r in rows), default=after_id)


async def ruled_spaces(session: AsyncSession, *, active_since: datetime) -> list[str]:
    """Spaces under a rule that are occupied or have events since ``active_since``; any with an open violation."""
    rows = await session.execute(text(_RULED_SPACES_SQL), {"since": active_since})
    return list(rows.scalars())


async def rules_fingerprint(session: AsyncSession) -> str:
    """A digest of all rules and no-parking flags: it changes whenever either does."""
    value = await session.scalar(text(
        "SELECT md5(coalesce((SELECT string_agg(r::text, '|' ORDER BY r.id) FROM parking_rules r), '')"
        " || coalesce((SELECT string_agg(id, '|' ORDER BY id) FROM spaces WHERE no_parking), ''))"))
    return str(value)


@dataclass
class Sweep:
    """State of the continuous detection loop between passes (one per ``citypark enforce``).

    Event ids come from one sequence but a batch committed late may carry ids below ones
    already seen, so each pass re-reads ids above the cursor of ``lookback`` ago (cheap: the
    engine is idempotent). Open stays are re-checked when the engine said they may change.
    """

    lookback: timedelta = timedelta(seconds=10)
    catch_up: timedelta = timedelta(hours=24)
    cursors: deque[tuple[datetime, int]] = field(default_factory=deque)
    due: dict[str, datetime] = field(default_factory=dict)
    fingerprint: str | None = None

    async def run_pass(self, session: AsyncSession, *, now: datetime, settings: Settings) -> Detected:
        """One pass: lock, find what changed, re-evaluate it, remember when to look again."""
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        changed = await self._changed(session, now)
        result = await detect(session, changed=changed, now=now, settings=settings)
        for space_id in changed:
            self.due.pop(space_id, None)
        self.due.update(result.next_checks)
        return result

    async def _changed(self, session: AsyncSession, now: datetime) -> dict[str, datetime]:
        fingerprint = await rules_fingerprint(session)
        changed: dict[str, datetime] = {}
        if fingerprint != self.fingerprint:
            # First pass catches up on history; later rule edits apply from the current stays on.
            back = self.catch_up if self.fingerprint is None else timedelta(0)
            spaces = await ruled_spaces(session, active_since=now - self.catch_up)
            changed = dict.fromkeys(spaces, now - back)
            self.fingerprint = fingerprint
        if not self.cursors:  # the catch-up above covers what came before this pass
            top = int(await session.scalar(text("SELECT coalesce(max(id), 0) FROM occupancy_events")))
            self.cursors.append((now, top))
        events, top = await changed_since(session, after_id=self._cursor(now))
        self.cursors.append((now, max(top, self.cursors[-1][1])))
        _merge_earliest(changed, events.items())
        _merge_earliest(changed, ((s, now) for s, t in self.due.items() if t <= now))
        return changed

    def _cursor(self, now: datetime) -> int:
        """The max id seen by the latest pass at least ``lookback`` ago (else the oldest pass)."""
        while len(self.cursors) > 1 and self.cursors[1][0] <= now - self.lookback:
            self.cursors.popleft()
        return self.cursors[0][1]


def _merge_earliest(into: dict[str, datetime], items: Iterable[tuple[str, datetime]]) -> None:
    for space_id, when in items:
        into[space_id] = min(when, into.get(space_id, when))


CSV_COLUMNS = ("id", "space_id", "facility_id", "facility_name", "operator_id", "kind", "rule_id",
               "limit_minutes", "stay_since", "started_at", "ended_at", "duration_minutes", "lat", "lon")


@dataclass(frozen=True)
class Query:
    """Which violations: still going on (``active``), overlapping ``[since, until)``, in ``bbox``."""

    active: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    kind: str | None = None

    def where(self) -> tuple[str, dict[str, object]]:
        """A SQL condition on ``violations v`` and its parameters."""
        terms: list[str] = ["TRUE"]
        params: dict[str, object] = {}
        if self.active is not None:
            terms.append("v.ended_at IS NULL" if self.active else "v.ended_at IS NOT NULL")
        if self.since is not None:
            terms.append("(v.ended_at IS NULL OR v.ended_at > :since)")
            params["since"] = self.since
        if self.until is not None:
            terms.append("v.started_at < :until")
            params["until"] = self.until
        if self.kind is not None:
            terms.append("v.kind = :kind")
            params["kind"] = self.kind
        if self.bbox is not None:
            terms.append("v.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
            params.update(zip(("minx", "miny", "maxx", "maxy"), self.bbox, strict=True))
        return " AND ".join(terms), params


async def list_violations(
    session: AsyncSession, *, query: Query, now: datetime, limit: int | None = 500, offset: int = 0,
    after: tuple[datetime, int] | None = None,
) -> list[dict[str, object]]:
    """Violations matching ``query``, newest first (then by id, descending), with how long each
    has lasted (minutes); the page after ``after`` (a previous page's last (started_at, id))."""
    where, params = query.where()
    page = "" if limit is None else "LIMIT :limit OFFSET :offset"
    if after is not None:
        where += " AND (v.started_at, v.id) < (:after_started, :after_id)"
        params = {**params, "after_started": after[0], "after_id": after[1]}
    rows = await session.execute(text(f"""
        SELECT v.id, v.space_id, v.facility_id, f.name AS facility_name, f.operator_id, v.kind,
               v.rule_id, v.limit_minutes, v.stay_since, v.started_at, v.ended_at,
               round(CAST(extract(epoch FROM coalesce(v.ended_at, :now) - v.started_at) / 60 AS numeric), 1)
                   AS duration_minutes,
               ST_Y(v.geom) AS lat, ST_X(v.geom) AS lon
        FROM violations v LEFT JOIN facilities f ON f.id = v.facility_id
        WHERE {where} ORDER BY v.started_at DESC, v.id DESC {page}"""),
        {**params, "now": now, "limit": limit, "offset": offset})
    return [{**row, "duration_minutes": float(row["duration_minutes"])} for row in rows.mappings()]


async def count_violations(session: AsyncSession, *, query: Query) -> int:
    """How many violations match ``query`` (the list's ``X-Total-Count``)."""
    where, params = query.where()
    return int(await session.scalar(text(f"SELECT count(*) FROM violations v WHERE {where}"), params) or 0)
