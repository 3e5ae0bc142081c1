"""Violation detection as a pure function of one space's occupancy history.

No database here: ``evaluate(history, rules, now=…)`` turns events and rules into violations,
so the result depends only on the set of events, never on the order they arrived in (the
sweep in ``app/enforcement/violations.py`` re-runs it whenever a space's history changes).

Semantics (local time of each rule's ``timezone``, Asia/Shanghai by default):

- A *stay* runs from the first ``occupied`` event after a free one to the next ``free`` event.
  Events are ordered by ``(observed_at, seq, occupied)``, so ties resolve the same every time.
- A rule is in force in *windows*: on each day of ``day_mask`` from ``start`` for ``minutes``
  (past midnight when the end is not after the start); touching windows of consecutive days
  join into one, so a 24-hour limit counts straight through midnight.
- ``overstay``: within a window the limit counts from ``max(stay start, window start)`` — a
  car parked before the window gets the full limit from the window's start. The violation
  starts when the limit is used up and ends when the car leaves or the window ends, whichever
  is first. ``stay_since`` is the instant the count began, so a stay spanning two days'
  windows yields one violation per window, and a re-run yields the same keys.
- ``no_parking``: occupied inside a no-parking window (or on a no-parking space or zone) for
  longer than ``grace``; counted, started and ended the same way.
- Time limits: the most specific level wins (a space's own limits replace its facility's,
  which replace a zone's); no-parking rules of every level apply together.
- Overlapping violations of one kind on one stay merge into one (the earliest keeps its
  ``stay_since``, rule and limit), so a car is never counted twice for the same minutes.
- Missing data is not evidence: a stay with no ``free`` event yet is known until ``now`` only
  while the sensor is fresh (last heard within ``stale_after``); once it is silent longer, the
  stay is known only until it was last heard, and nothing after that becomes a violation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

OVERSTAY, NO_PARKING = "overstay", "no_parking"
LEVELS = ("space", "facility", "zone")  # most specific first
FUTURE = timedelta(days=8)  # how far ahead next_check looks for an open stay


@dataclass(frozen=True)
class Event:
    observed_at: datetime
    occupied: bool
    seq: int | None = None


@dataclass(frozen=True)
class Rule:
    """A rule as it applies to one space; ``level`` is where it was set."""

    id: int | None
    kind: str  # 'time_limit' | 'no_parking'
    day_mask: int
    start_min: int
    minutes: int
    max_stay_minutes: int | None = None
    level: str = "space"
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True)
class Stay:
    since: datetime
    until: datetime | None  # None: no free event yet
    last_event: datetime


@dataclass(frozen=True)
class Found:
    """A violation as detection sees it; ``ended_at`` None = still going on at ``now``."""

    kind: str
    rule_id: int | None
    stay_since: datetime
    started_at: datetime
    ended_at: datetime | None
    limit_minutes: int | None


@dataclass(frozen=True)
class Evaluation:
    violations: list[Found]
    next_check: datetime | None  # when the result may change with no new event


ALWAYS = Rule(None, "no_parking", 127, 0, 1440, level="space")


def rule_window(start: time, end: time) -> tuple[int, int]:
    """``(start_min, minutes)`` of a daily window stored as start/end times (end <= start: overnight)."""
    start_min, end_min = start.hour * 60 + start.minute, end.hour * 60 + end.minute
    return start_min, (end_min - start_min) % 1440 or 1440


def stays(history: Iterable[Event]) -> list[Stay]:
    """The occupied spells of a history, in time order."""
    out: list[Stay] = []
    since: datetime | None = None
    last: datetime | None = None
    for event in sorted(history, key=_order):
        if event.occupied and since is None:
            since = event.observed_at
        elif not event.occupied and since is not None:
            out.append(Stay(since, event.observed_at, event.observed_at))
            since = None
        last = event.observed_at
    if since is not None and last is not None:
        out.append(Stay(since, None, last))
    return out


def _order(event: Event) -> tuple[datetime, int, bool]:
    return event.observed_at, -1 if event.seq is None else event.seq, event.occupied


def evaluate(
    history: Iterable[Event], rules: Sequence[Rule], *, now: datetime,
    last_seen: datetime | None = None, stale_after: timedelta = timedelta(minutes=30),
    grace: timedelta = timedelta(minutes=5),
) -> Evaluation:
    """All violations of a space's history under ``rules`` as of ``now``, and when to look again."""
    in_force = effective_rules(rules)
    found: list[Found] = []
    checks: list[datetime] = []
    for stay in stays(history):
        end, fresh = _known_end(stay, now, last_seen, stale_after)
        found += _stay_violations(stay, in_force, end, now if fresh else None, grace)
        if fresh:
            checks += _future_changes(stay, in_force, now, grace)
            checks.append(max(stay.last_event, last_seen or stay.last_event) + stale_after)
    return Evaluation(found, min((c for c in checks if c > now), default=None))


def effective_rules(rules: Sequence[Rule]) -> list[Rule]:
    """Every no-parking rule, and the time limits of the most specific level that has any."""
    limits = [r for r in rules if r.kind == "time_limit"]
    level = next((lv for lv in LEVELS if any(r.level == lv for r in limits)), None)
    return [r for r in rules if r.kind == "no_parking" or r.level == level]


def _known_end(
    stay: Stay, now: datetime, last_seen: datetime | None, stale_after: timedelta
) -> tuple[datetime, bool]:
    """Until when the stay is known, and whether it is still going on (fresh, no free event)."""
    if stay.until is not None:
        return stay.until, False
    heard = max(stay.last_event, last_seen or stay.last_event)
    if now - heard <= stale_after:
        return max(now, stay.since), True
    return heard, False


def _stay_violations(
    stay: Stay, rules: Sequence[Rule], end: datetime, open_at: datetime | None, grace: timedelta
) -> list[Found]:
    """Violations of one stay known until ``end``; ``open_at`` = now when it is still going on."""
    out: list[Found] = []
    for kind in (OVERSTAY, NO_PARKING):
        candidates = [
            found for rule in rules if _kind(rule) == kind
            for found in _rule_violations(stay.since, end, rule, grace)
        ]
        out += _merge(candidates, open_at)
    return out


def _kind(rule: Rule) -> str:
    return NO_PARKING if rule.kind == "no_parking" else OVERSTAY


def _rule_violations(since: datetime, end: datetime, rule: Rule, grace: timedelta) -> Iterator[Found]:
    allowed = timedelta(minutes=rule.max_stay_minutes) if rule.max_stay_minutes else grace
    for window_start, window_end in windows(rule, since, end):
        counted_from = max(since, window_start)
        started = counted_from + allowed
        stop = min(end, window_end)
        if started < stop:
            yield Found(_kind(rule), rule.id, counted_from, started, stop, rule.max_stay_minutes)


def _merge(candidates: list[Found], open_at: datetime | None) -> list[Found]:
    """Join overlapping violations of one kind (earliest wins); mark the one still going on."""
    merged: list[Found] = []
    for found in sorted(candidates, key=_found_order):
        last = merged[-1] if merged else None
        if last and (found.started_at <= _end(last) or found.stay_since == last.stay_since):
            merged[-1] = replace(last, ended_at=max(_end(last), _end(found)))
        else:
            merged.append(found)
    return [replace(f, ended_at=None) if open_at and _end(f) >= open_at else f for f in merged]


def _found_order(f: Found) -> tuple[datetime, datetime, int, int]:
    return f.started_at, f.stay_since, f.limit_minutes or 0, f.rule_id or 0


def _end(found: Found) -> datetime:
    assert found.ended_at is not None
    return found.ended_at


def _future_changes(stay: Stay, rules: Sequence[Rule], now: datetime, grace: timedelta) -> list[datetime]:
    """Instants after ``now`` when an open stay's violations start or end if the car stays."""
    out = []
    for rule in rules:
        for found in _rule_violations(stay.since, now + FUTURE, rule, grace):
            out += [t for t in (found.started_at, found.ended_at) if t and t > now]
    return out


def windows(rule: Rule, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """The rule's windows (UTC, touching ones joined) that overlap ``[since, until)``."""
    zone = _zone(rule.timezone)
    first = since.astimezone(zone).date() - timedelta(days=1)
    days = (until.astimezone(zone).date() - first).days + 1
    raw = [_window(rule, first + timedelta(days=i), zone) for i in range(days)
           if rule.day_mask >> (first + timedelta(days=i)).weekday() & 1]
    joined: list[tuple[datetime, datetime]] = []
    for start, end in raw:
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        else:
            joined.append((start, end))
    return [(s, e) for s, e in joined if s < until and e > since]


def _window(rule: Rule, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    local = datetime.combine(day, time(rule.start_min // 60, rule.start_min % 60), tzinfo=zone)
    start = local.astimezone(UTC)
    return start, start + timedelta(minutes=rule.minutes)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
