"""The SQL of matching: KNN candidates over free, unheld spaces, and holds.

Candidates come from PostGIS KNN (``ORDER BY geom <-> point`` over the GiST index on
``spaces.geom``, then ranked by true distance, see ``CANDIDATES``) filtered to spaces whose
sensor reported *free* within ``stale`` seconds, that no active assignment holds, outside
closed facilities and blocked spaces (``matching_eligibility``). (A space hold ends as
``arrived`` only once its sensor reports it occupied, so no arrival needs excluding here.)
Holds are rows of ``assignments``; the exclusion constraint makes a second active hold on a
space fail, so ``INSERT … ON CONFLICT DO NOTHING`` returning no row means "taken, try the next".
"""

from __future__ import annotations

from sqlalchemy import text

from app.occupancy.staleness import fresh_sql

ACTIVE_STATUSES = ("held", "reassigned")
ACTIVE = "('held', 'reassigned')"

_FREE_SPACE = f"""
    st.occupied IS FALSE
    AND {fresh_sql('st')}
    AND NOT s.no_parking
    AND s.facility_id <> ALL(CAST(:closed AS text[]))
    AND s.id <> ALL(CAST(:blocked AS text[]))
    AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.space_id = s.id
                    AND a.status IN {ACTIVE} AND upper(a.hold) > now())
"""

# Per driver of the batch (LATERAL, one round trip for all), the k nearest by true (sphere)
# distance in one pass: KNN (``<->``) and ``ST_DWithin`` on ``geom::geography``, both served
# by the geography GiST index ``ix_spaces_geog`` (migration 0005).
_SPACE_FILTER = f"""{_FREE_SPACE}
      AND (NOT r.acc OR s.accessible) AND (NOT r.ev OR s.ev)
      AND s.id <> ALL(CAST(:exclude AS text[]))"""

CANDIDATES = text(f"""
SELECT r.n, c.id, c.facility_id, c.lat, c.lon, c.accessible, c.ev, c.distance_m
FROM unnest(CAST(:lats AS float8[]), CAST(:lons AS float8[]), CAST(:acc AS bool[]),
            CAST(:ev AS bool[]), CAST(:radius AS float8[]), CAST(:k AS int[]))
     WITH ORDINALITY AS r(lat, lon, acc, ev, radius, k, n)
CROSS JOIN LATERAL (
    SELECT CAST(ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) AS geography) AS g
) p
CROSS JOIN LATERAL (
    SELECT s.id, s.facility_id, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, s.accessible, s.ev,
           ST_Distance(CAST(s.geom AS geography), p.g, false) AS distance_m
    FROM spaces s JOIN space_state st ON st.space_id = s.id
    WHERE {_SPACE_FILTER} AND ST_DWithin(CAST(s.geom AS geography), p.g, r.radius, false)
    ORDER BY CAST(s.geom AS geography) <-> p.g
    LIMIT r.k
) c
ORDER BY r.n, c.distance_m, c.id
""")

# ``GET /v1/spaces/free`` pages before the in-memory index has loaded: nearest first after the
# previous page's last (metres, id), and free spaces in a box by id after the last id.
FREE_PAGE = text(f"""
SELECT id AS space_id, facility_id, lat, lon, distance_m FROM (
    SELECT s.id, s.facility_id, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon,
           ST_Distance(CAST(s.geom AS geography), p.g, false) AS distance_m
    FROM (SELECT CAST(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geography) AS g) p,
         spaces s JOIN space_state st ON st.space_id = s.id
    WHERE {_FREE_SPACE} AND (NOT :acc OR s.accessible) AND (NOT :ev OR s.ev)
      AND ST_DWithin(CAST(s.geom AS geography), p.g, :radius, false)
) c
WHERE CAST(:after_m AS float8) IS NULL OR (distance_m, id) > (CAST(:after_m AS float8), CAST(:after_id AS text))
ORDER BY distance_m, id
LIMIT :k
""")

FREE_IN_BBOX = text(f"""
SELECT s.id AS space_id, s.facility_id, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, s.accessible, s.ev
FROM spaces s JOIN space_state st ON st.space_id = s.id
WHERE {_FREE_SPACE} AND (NOT :acc OR s.accessible) AND (NOT :ev OR s.ev)
  AND s.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)
  AND (CAST(:after_id AS text) IS NULL OR s.id > CAST(:after_id AS text))
ORDER BY s.id
LIMIT :k
""")

# Gate-counted facilities: free places = fresh count minus facility-level holds.
COUNTED = text(f"""
SELECT f.id, ST_Y(f.entrance) AS lat, ST_X(f.entrance) AS lon, c.free - coalesce(h.n, 0) AS places,
       ST_Distance(f.entrance::geography, p.g, false) AS distance_m
FROM (SELECT CAST(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geography) AS g) p,
     facilities f JOIN facility_counts c ON c.facility_id = f.id
     LEFT JOIN LATERAL (SELECT count(*) AS n FROM assignments a WHERE a.facility_id = f.id
                        AND a.space_id IS NULL AND a.status IN {ACTIVE} AND upper(a.hold) > now()) h ON true
WHERE f.counted AND f.id <> ALL(CAST(:closed AS text[]))
  AND {fresh_sql('c')}
  AND c.free - coalesce(h.n, 0) > 0
  AND ST_DWithin(f.entrance::geography, p.g, :radius)
ORDER BY f.entrance <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
LIMIT :k
""")

_INSERT_COLUMNS = """(id, key_id, space_id, facility_id, status, hold, lat, lon, dest_lat, dest_lon,
                      preferences, expires_at)"""
_HOLD_VALUES = """:id, :key_id, {space}, :facility_id, 'held',
    tstzrange(now(), now() + make_interval(secs => :hold_s)), :lat, :lon, :dest_lat, :dest_lon,
    CAST(:preferences AS jsonb), now() + make_interval(secs => :hold_s)"""

# One hold (the route's path when the group writer could not start): like ``INSERT_SPACE_HOLDS``,
# the row is inserted only if the space still reads free and fresh, and the exclusion
# constraint drops it when another transaction holds the space.
INSERT_SPACE_HOLD = text(f"""
INSERT INTO assignments {_INSERT_COLUMNS}
SELECT {_HOLD_VALUES.format(space='s.id').replace(':facility_id', 's.facility_id')}
FROM spaces s JOIN space_state st ON st.space_id = s.id
WHERE s.id = :space_id
  AND st.occupied IS FALSE
  AND {fresh_sql('st')}
ON CONFLICT DO NOTHING
RETURNING id, expires_at
""")

# Many holds in one statement (group commit, ``matching_holds.HoldWriter``): each row is
# inserted only if its space still reads free and fresh, and the exclusion constraint drops a
# row whose space another transaction holds (``ON CONFLICT DO NOTHING``). Rows come sorted by
# space id so concurrent writers take their conflicts in one order (no deadlock).
INSERT_SPACE_HOLDS = f"""
INSERT INTO assignments {_INSERT_COLUMNS}
SELECT r.id, r.key_id, r.space_id, s.facility_id, 'held',
       tstzrange(now(), now() + make_interval(secs => $9)), r.lat, r.lon, r.dest_lat, r.dest_lon,
       CAST(r.prefs AS jsonb), now() + make_interval(secs => $9)
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[], $5::float8[], $6::float8[],
            $7::float8[], $8::text[]) AS r(id, key_id, space_id, lat, lon, dest_lat, dest_lon, prefs)
JOIN spaces s ON s.id = r.space_id
JOIN space_state st ON st.space_id = r.space_id
WHERE st.occupied IS FALSE
  AND {fresh_sql('st', '$10')}
ORDER BY r.space_id
ON CONFLICT DO NOTHING
RETURNING id, space_id, expires_at
"""

# Serialised per facility by an advisory lock taken first (a separate statement, so this one's
# snapshot sees holds committed while waiting for the lock).
LOCK_FACILITY = text("SELECT pg_advisory_xact_lock(hashtext('citypark-facility-hold:' || :facility_id))")
INSERT_FACILITY_HOLD = text(f"""
INSERT INTO assignments {_INSERT_COLUMNS}
SELECT {_HOLD_VALUES.format(space='NULL')}
FROM facility_counts c
WHERE c.facility_id = :facility_id
  AND c.free > (SELECT count(*) FROM assignments a WHERE a.facility_id = :facility_id
                AND a.space_id IS NULL AND a.status IN {ACTIVE} AND upper(a.hold) > now())
RETURNING id, expires_at
""")

GET_ASSIGNMENT = text("""
SELECT a.id, a.key_id, a.space_id, a.facility_id, a.status, a.reason, a.lat, a.lon, a.dest_lat, a.dest_lon,
       coalesce(a.origin_lat, a.lat) AS origin_lat, coalesce(a.origin_lon, a.lon) AS origin_lon,
       a.preferences, a.previous_space_ids, a.created_at, a.updated_at, a.expires_at,
       upper(a.hold) AS hold_until, now() AS now,
       coalesce(ST_Y(s.geom), ST_Y(f.entrance)) AS target_lat,
       coalesce(ST_X(s.geom), ST_X(f.entrance)) AS target_lon,
       st.occupied AS target_occupied, st.observed_at AS target_observed_at
FROM assignments a
JOIN facilities f ON f.id = a.facility_id
LEFT JOIN spaces s ON s.id = a.space_id
LEFT JOIN space_state st ON st.space_id = a.space_id
WHERE a.id = :id
""")

SET_STATUS = text(f"""
UPDATE assignments SET status = :status, updated_at = now(),
       hold = CASE WHEN :status IN {ACTIVE} THEN hold
                   ELSE tstzrange(lower(hold), greatest(lower(hold), least(upper(hold), now())))
              END
WHERE id = :id AND status IN {ACTIVE}
RETURNING id
""")

# The first report keeps the request's point (``origin_*``): re-assignment searches around it.
SET_POSITION = text("""
UPDATE assignments SET origin_lat = coalesce(origin_lat, lat), origin_lon = coalesce(origin_lon, lon),
       lat = :lat, lon = :lon, updated_at = now()
WHERE id = :id""")

# Nothing fits around the driver's goal any more: the assignment ends ``lost`` with a reason.
SET_LOST = text(f"""
UPDATE assignments SET status = 'lost', reason = :reason, updated_at = now(),
       hold = tstzrange(lower(hold), greatest(lower(hold), least(upper(hold), now())))
WHERE id = :id AND status IN {ACTIVE}
RETURNING id
""")

MOVE_HOLD = text(f"""
UPDATE assignments SET space_id = :space_id, facility_id = :facility_id, status = 'reassigned',
       previous_space_ids = previous_space_ids || to_jsonb(CAST(:old AS text)), updated_at = now()
WHERE id = :id AND status IN {ACTIVE} AND space_id = :old
RETURNING id
""")

# Active holds whose space a sensor now reports occupied (only free spaces are held, so the
# car came after the hold); locked so
# that one API process handles each, the others skip it.
LOST_HOLDS = text(f"""
SELECT a.id, a.space_id, a.facility_id, a.lat, a.lon, a.dest_lat, a.dest_lon, a.preferences,
       coalesce(a.origin_lat, a.lat) AS origin_lat, coalesce(a.origin_lon, a.lon) AS origin_lon,
       ST_Y(s.geom) AS space_lat, ST_X(s.geom) AS space_lon
FROM assignments a JOIN space_state st ON st.space_id = a.space_id JOIN spaces s ON s.id = a.space_id
WHERE a.status IN {ACTIVE} AND upper(a.hold) > now() AND st.occupied
  AND (CAST(:space_ids AS text[]) IS NULL OR a.space_id = ANY(CAST(:space_ids AS text[])))
ORDER BY a.id
FOR UPDATE OF a SKIP LOCKED
""")

# Other active space holds near a point: holders the monotone re-assignment may move.
NEARBY_HOLDS = text(f"""
SELECT a.id, a.space_id, a.facility_id, a.lat, a.lon, a.dest_lat, a.dest_lon, a.preferences,
       coalesce(a.origin_lat, a.lat) AS origin_lat, coalesce(a.origin_lon, a.lon) AS origin_lon,
       ST_Y(s.geom) AS space_lat, ST_X(s.geom) AS space_lon, s.accessible, s.ev
FROM assignments a JOIN spaces s ON s.id = a.space_id
WHERE a.status IN {ACTIVE} AND upper(a.hold) > now() AND a.id <> :id
  AND NOT EXISTS (SELECT 1 FROM space_state st WHERE st.space_id = a.space_id AND st.occupied)
  AND ST_DWithin(s.geom::geography, CAST(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geography), :radius)
ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
LIMIT :k
FOR UPDATE OF a SKIP LOCKED
""")
