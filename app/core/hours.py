"""A subset of OpenStreetMap's ``opening_hours`` syntax: days and time ranges.

Supported: ``24/7``; rules separated by ``;``; each rule ``DAYS HH:MM-HH:MM[,HH:MM-HH:MM]``
where DAYS is a comma list of days or day ranges (``Mo-Fr``, ``Sa,Su``, ``Fr-Mo``); a range
whose end is not after its start crosses midnight (``22:00-06:00``) and belongs to the day it
starts on; ``24:00`` is the end of the day; ``off`` closes the listed days. Times are local.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from app.core.errors import InvalidInput

DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Span:
    """Open on ``day_mask`` days from ``start`` for ``minutes`` minutes (may pass midnight)."""

    day_mask: int
    start_min: int
    minutes: int


def parse_days(text: str) -> int:
    """``"Mo-Sa"`` / ``"Sa,Su"`` / ``"Fr-Mo"`` → bit mask, bit 0 = Monday."""
    mask = 0
    for part in text.split(","):
        ends = part.strip().split("-")
        if len(ends) not in (1, 2) or any(e not in DAYS for e in ends):
            raise InvalidInput(f"bad day list {text!r}: use Mo Tu We Th Fr Sa Su, ranges like Mo-Fr")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        for offset in range((last - first) % 7 + 1):
            mask |= 1 << ((first + offset) % 7)
    return mask


def parse_clock(text: str) -> int:
    """``"HH:MM"`` → minutes since midnight (``24:00`` allowed)."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 24 or int(match[2]) > 59 or (int(match[1]) == 24 and int(match[2])):
        raise InvalidInput(f"bad time {text!r}: use HH:MM")
    return int(match[1]) * 60 + int(match[2])


def span_minutes(start_min: int, end_min: int) -> int:
    """Length of a daily window; an end not after the start crosses midnight."""
    return end_min - start_min if end_min > start_min else end_min + 1440 - start_min


def parse(spec: str) -> list[Span]:
    """Parse an opening_hours string; raises InvalidInput with the offending part."""
    text = spec.strip()
    if text == "24/7":
        return [Span(127, 0, 1440)]
    spans: list[Span] = []
    for rule in filter(None, (r.strip() for r in text.split(";"))):
        days, _, times = rule.partition(" ")
        mask = parse_days(days)
        if times.strip() == "off":
            spans = [Span(s.day_mask & ~mask, s.start_min, s.minutes) for s in spans]
            continue
        for rng in times.split(","):
            match = _RANGE.match(rng.strip())
            if not match:
                raise InvalidInput(f"bad time range {rng.strip()!r} in {spec!r}: use HH:MM-HH:MM")
            start = parse_clock(f"{match[1]}:{match[2]}")
            end = parse_clock(f"{match[3]}:{match[4]}")
            spans.append(Span(mask, start, span_minutes(start, end)))
    if not spans:
        raise InvalidInput(f"empty opening hours {spec!r}")
    return spans


def is_open(spec: str | None, when: datetime) -> bool:
    """Whether ``when`` (local, naive or aware) falls inside ``spec``; None means always."""
    if spec is None:
        return True
    return any(_in_span(span, when) for span in parse(spec))


def minutes_until_close(spec: str | None, when: datetime) -> float | None:
    """Minutes from ``when`` until the open span containing it ends; None if always/closed."""
    if spec is None:
        return None
    ends = [end for span in parse(spec) if (end := _span_end(span, when)) is not None]
    return (max(ends) - when).total_seconds() / 60 if ends else None


def _span_end(span: Span, when: datetime) -> datetime | None:
    for back in (0, 1):  # a span may have started yesterday and run past midnight
        day = when - timedelta(days=back)
        if not span.day_mask >> day.weekday() & 1:
            continue
        start = datetime.combine(day.date(), time(), tzinfo=when.tzinfo)
        start += timedelta(minutes=span.start_min)
        end = start + timedelta(minutes=span.minutes)
        if start <= when < end:
            return end
    return None


def _in_span(span: Span, when: datetime) -> bool:
    return _span_end(span, when) is not None
