"""The one reading of the history every management figure uses, as SQL.

A reading — a space's occupancy event, a gate count, a passage's ``free_after`` — holds until
the next reading of the same space (or counted facility), for at most ``hold`` seconds; after
that the space is *stale*: its time is neither free nor occupied, it counts only as unknown.
Spaces of a group (a facility, a grid cell) are merged into a step function: ``k`` spaces with
data, ``o`` of them occupied, from ``t`` to ``t2``. Voided passages and no-parking spaces are left
out. ``levels_sql`` returns CTEs ending in ``levels(g, t, t2, k, o)`` for ``[:a, :b)``.
"""

from __future__ import annotations

ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00+00'"  # hours are UTC hours: date_bin, not the session's zone
HOLD = "make_interval(secs => CAST(:hold AS float8))"


def levels_sql(*, space_group: str, facility_group: str, where: str = "true") -> str:
    """CTEs up to ``levels``; ``space_group``/``facility_group`` are SQL over ``s``/``f`` (spaces,
    facilities) naming the group a sensor space / a gate-counted facility belongs to; ``where``
    (SQL over ``f``) picks the facilities."""
    return f"""
sp AS MATERIALIZED (
    SELECT s.id, {space_group} AS g FROM spaces s JOIN facilities f ON f.id = s.facility_id
    WHERE NOT s.no_parking AND NOT f.counted AND {where}
), cf AS MATERIALIZED (
    SELECT f.id, f.capacity, {facility_group} AS g FROM facilities f WHERE f.counted AND f.capacity > 0 AND {where}
), ev AS (
    SELECT e.space_id, e.observed_at AS t, e.occupied,
           lead(e.observed_at) OVER (PARTITION BY e.space_id COLLATE "C" ORDER BY e.observed_at, e.seq NULLS FIRST)
               AS nt
    FROM occupancy_events e
    WHERE e.observed_at >= CAST(:a AS timestamptz) - {HOLD} AND e.observed_at < CAST(:b AS timestamptz)
), rd AS (
    SELECT c.facility_id AS fid, c.observed_at AS t, coalesce(c.total, cf.capacity) AS k,
           coalesce(c.total, cf.capacity) - c.free AS occ, 0 AS ord
    FROM count_events c JOIN cf ON cf.id = c.facility_id
    WHERE c.observed_at >= CAST(:a AS timestamptz) - {HOLD} AND c.observed_at < CAST(:b AS timestamptz)
    UNION ALL
    SELECT p.facility_id, p.observed_at, cf.capacity, cf.capacity - p.free_after, 1
    FROM passages p JOIN cf ON cf.id = p.facility_id
    WHERE p.free_after IS NOT NULL AND p.voided_by IS NULL AND p.direction IS NOT NULL
      AND p.observed_at >= CAST(:a AS timestamptz) - {HOLD} AND p.observed_at < CAST(:b AS timestamptz)
), rd2 AS (
    SELECT fid, t, k, greatest(0, least(k, occ)) AS o,
           lead(t) OVER (PARTITION BY fid COLLATE "C" ORDER BY t, ord) AS nt
    FROM rd
), spells AS (
    SELECT sp.g, greatest(ev.t, CAST(:a AS timestamptz)) AS s,
           least(coalesce(ev.nt, CAST(:b AS timestamptz)), ev.t + {HOLD}, CAST(:b AS timestamptz)) AS e,
           1 AS k, ev.occupied::int AS o
    FROM ev JOIN sp ON sp.id = ev.space_id
    UNION ALL
    SELECT cf.g, greatest(rd2.t, CAST(:a AS timestamptz)),
           least(coalesce(rd2.nt, CAST(:b AS timestamptz)), rd2.t + {HOLD}, CAST(:b AS timestamptz)), rd2.k, rd2.o
    FROM rd2 JOIN cf ON cf.id = rd2.fid
), deltas AS (
    SELECT g, s AS t, k AS dk, o AS dq FROM spells WHERE e > s
    UNION ALL
    SELECT g, e, -k, -o FROM spells WHERE e > s
), steps AS (
    SELECT g, t, sum(dk) AS dk, sum(dq) AS dq FROM deltas GROUP BY g, t
), levels AS (
    SELECT g, t, lead(t) OVER w AS t2, sum(dk) OVER w AS k, sum(dq) OVER w AS o
    FROM steps WINDOW w AS (PARTITION BY g ORDER BY t)
)"""


def hourly_sql(*, space_group: str, facility_group: str) -> str:
    """``levels`` cut at UTC hours and summed: ``(g, h, known_s, occupied_s, data_s, full_s,
    idle_s, peak)``; full = at least 85 % of the known spaces occupied, idle = below 30 %."""
    return f"""WITH {levels_sql(space_group=space_group, facility_group=facility_group)},
pieces AS (
    SELECT g, h, extract(epoch FROM least(t2, h + interval '1 hour') - greatest(t, h)) AS dt, k, o
    FROM levels CROSS JOIN LATERAL
         generate_series(date_bin('1 hour', t, {ORIGIN}), t2 - interval '1 microsecond', interval '1 hour') AS h
    WHERE t2 IS NOT NULL AND k > 0
)
SELECT g, h, sum(k * dt) AS known_s, sum(o * dt) AS occupied_s, sum(dt) AS data_s,
       coalesce(sum(dt) FILTER (WHERE o * 100 >= 85 * k), 0) AS full_s,
       coalesce(sum(dt) FILTER (WHERE o * 100 < 30 * k), 0) AS idle_s,
       max(o::float8 / k) FILTER (WHERE dt > 0) AS peak
FROM pieces GROUP BY g, h"""
