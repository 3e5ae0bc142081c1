"""Hourly rollups, maintained incrementally.

Every statement that writes history (ingest batches, HTTP pushes, history imports, passage
voids) appends the UTC hours it touched to ``management_dirty`` (triggers of migration 0014).
:func:`refresh` rolls up the hours completed since its watermark and recomputes the dirty
hours before it — a late event changes its hour and, through the stays it opens or closes, at
most ``STAY_MAX`` after it — so each run does work in proportion to what is new. Only whole
past hours are rolled up; the hour in progress is left for the next run.

A stay is a known free→occupied change followed, without a stale gap, by a known
occupied→free change (sensor spaces), or an unvoided exit with its stay (gate-counted
facilities); it counts in the hour it ends, if it lasted at most ``STAY_MAX``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.management.levels import HOLD, ORIGIN, hourly_sql

HOUR = timedelta(hours=1)
STAY_MAX = timedelta(hours=24)
CHUNK = timedelta(days=7)  # a long backlog is recomputed a week at a time
LOCK = "SELECT pg_advisory_xact_lock(hashtext('citypark.management.rollups'))"

_INSERT_HOURLY = f"""
WITH agg AS ({hourly_sql(space_group="s.facility_id", facility_group="f.id")}),
fac AS (
    SELECT f.id, f.timezone, CASE WHEN f.counted THEN f.capacity ELSE
               (SELECT count(*) FROM spaces s WHERE s.facility_id = f.id AND NOT s.no_parking) END AS n
    FROM facilities f
)
INSERT INTO management_hourly (facility_id, hour, local_hour, local_weekday, spaces, space_s, known_s, occupied_s,
                               data_s, full_s, idle_s, peak, stays, stay_s)
SELECT fac.id, hs.h, extract(hour FROM hs.h AT TIME ZONE fac.timezone),
       extract(isodow FROM hs.h AT TIME ZONE fac.timezone), fac.n, fac.n * 3600.0, coalesce(agg.known_s, 0),
       coalesce(agg.occupied_s, 0), coalesce(agg.data_s, 0), coalesce(agg.full_s, 0), coalesce(agg.idle_s, 0),
       agg.peak, 0, 0
FROM fac CROSS JOIN generate_series(CAST(:a AS timestamptz), CAST(:b AS timestamptz) - interval '1 hour',
                                    interval '1 hour') AS hs(h)
LEFT JOIN agg ON agg.g = fac.id AND agg.h = hs.h
WHERE fac.n > 0 OR agg.g IS NOT NULL
"""

_STAYS = f"""
WITH sp AS MATERIALIZED (
    SELECT s.id, s.facility_id FROM spaces s JOIN facilities f ON f.id = s.facility_id
    WHERE NOT s.no_parking AND NOT f.counted
), sev AS (
    SELECT e.space_id, sp.facility_id, e.observed_at AS t, e.occupied,
           lag(e.occupied) OVER w AS po, lag(e.observed_at) OVER w AS pt, row_number() OVER w AS i
    FROM occupancy_events e JOIN sp ON sp.id = e.space_id
    WHERE e.observed_at >= CAST(:a AS timestamptz) - make_interval(secs => CAST(:stay_max AS float8)) - {HOLD}
      AND e.observed_at < CAST(:b AS timestamptz)
    WINDOW w AS (PARTITION BY e.space_id COLLATE "C" ORDER BY e.observed_at, e.seq NULLS FIRST)
), marks AS (
    SELECT space_id, facility_id, t, i, CASE WHEN pt IS NULL OR t - pt > {HOLD} THEN 'x'
                                WHEN occupied AND NOT po THEN 's' WHEN po AND NOT occupied THEN 'e' END AS m
    FROM sev
), m2 AS (
    SELECT facility_id, t, m, lag(m) OVER w AS pm, lag(t) OVER w AS ps
    FROM marks WHERE m IS NOT NULL WINDOW w AS (PARTITION BY space_id COLLATE "C" ORDER BY i)
), st AS (
    SELECT m2.facility_id AS g, date_bin('1 hour', m2.t, {ORIGIN}) AS h, extract(epoch FROM m2.t - m2.ps) AS dur
    FROM m2
    WHERE m2.m = 'e' AND m2.pm = 's' AND m2.t >= CAST(:a AS timestamptz)
      AND m2.t - m2.ps <= make_interval(secs => CAST(:stay_max AS float8))
    UNION ALL
    SELECT p.facility_id, date_bin('1 hour', p.observed_at, {ORIGIN}), p.stay_s
    FROM passages p JOIN facilities f ON f.id = p.facility_id AND f.counted
    WHERE p.direction = 'out' AND p.voided_by IS NULL AND p.stay_s IS NOT NULL
      AND p.stay_s <= CAST(:stay_max AS float8)
      AND p.observed_at >= CAST(:a AS timestamptz) AND p.observed_at < CAST(:b AS timestamptz)
), ins AS (
    INSERT INTO management_stays (facility_id, hour, minutes, local_hour, local_weekday, n)
    SELECT g, h, floor(dur / 60)::int, extract(hour FROM h AT TIME ZONE f.timezone),
           extract(isodow FROM h AT TIME ZONE f.timezone), count(*)
    FROM st JOIN facilities f ON f.id = st.g GROUP BY 1, 2, 3, f.timezone
)
UPDATE management_hourly r SET stays = x.n, stay_s = x.s
FROM (SELECT g, h, count(*) AS n, sum(dur) AS s FROM st GROUP BY g, h) AS x
WHERE r.facility_id = x.g AND r.hour = x.h
"""


@dataclass(frozen=True)
class Refreshed:
    watermark: datetime | None  # every hour before it is rolled up
    hours: int  # hours recomputed by this run


def floor_hour(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    floor = floor_hour(at)
    return floor if floor == at else floor + HOUR


async def recompute(session: AsyncSession, *, a: datetime, b: datetime, hold_s: int) -> None:
    """Replace the rollups of the hours in ``[a, b)`` (whole UTC hours) with ones from the history."""
    params = {"a": a, "b": b, "hold": float(hold_s), "stay_max": STAY_MAX.total_seconds()}
    await session.execute(text("SET LOCAL work_mem = '128MB'"))
    await session.execute(text("SET LOCAL jit = off"))  # compiling these plans costs more than running them
    for table in ("management_hourly", "management_stays"):
        await session.execute(text(f"DELETE FROM {table} WHERE hour >= :a AND hour < :b"), {"a": a, "b": b})
    await session.execute(text(_INSERT_HOURLY), params)
    await session.execute(text(_STAYS), params)


async def refresh(session: AsyncSession, *, now: datetime, hold_s: int, max_hours: int | None = None) -> Refreshed:
    """Bring the rollups up to the last whole hour before ``now``; caller commits.

    With ``max_hours``, a run that would recompute more hours than that does nothing (an API
    request must not turn into a long backfill: ``citypark rollup`` does those)."""
    await session.execute(text(LOCK))
    end = floor_hour(now)
    rows = (await session.execute(
        text("SELECT id, hour FROM management_dirty WHERE hour < :end"), {"end": end})).all()
    dirty = sorted({r.hour for r in rows})
    watermark = await _watermark(session, dirty=dirty, end=end)
    if watermark is None:
        return Refreshed(None, 0)
    reach = STAY_MAX + timedelta(seconds=hold_s) + HOUR
    ranges = [(h, min(h + reach, end)) for h in dirty if h < watermark]
    if watermark < end:
        ranges.append((watermark, end))
    work = _chunks(_merge(ranges))
    hours = sum(int((b - a) / HOUR) for a, b in work)
    if max_hours is not None and hours > max_hours:
        return Refreshed(watermark, 0)
    await session.execute(text("DELETE FROM management_dirty WHERE id = ANY(:ids)"), {"ids": [r.id for r in rows]})
    for a, b in work:
        await recompute(session, a=a, b=b, hold_s=hold_s)
    new_mark = max(watermark, end)
    await session.execute(text("UPDATE management_state SET watermark = :w"), {"w": new_mark})
    return Refreshed(new_mark, hours)


async def _watermark(session: AsyncSession, *, dirty: list[datetime], end: datetime) -> datetime | None:
    """The stored watermark; the first time, the hour of the oldest history (None: no history)."""
    row = (await session.execute(text("SELECT watermark FROM management_state"))).first()
    if row is not None and row[0] is not None:
        return floor_hour(row[0])
    first = (await session.execute(text(
        "SELECT least((SELECT min(observed_at) FROM occupancy_events), (SELECT min(observed_at) FROM count_events),"
        " (SELECT min(observed_at) FROM passages))"))).scalar()
    candidates = [floor_hour(x) for x in (*dirty, first) if x is not None]
    mark = min(candidates) if candidates else None
    if row is None:
        await session.execute(text("INSERT INTO management_state (id, watermark) VALUES (true, NULL)"))
    return None if mark is None else min(mark, end)


def _merge(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _chunks(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out = []
    for a, b in ranges:
        while a < b:
            out.append((a, min(a + CHUNK, b)))
            a += CHUNK
    return out
