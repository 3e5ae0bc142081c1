"""The set-based statements behind ``app.passages.service``."""

from __future__ import annotations

INSERT = """
INSERT INTO passages (facility_id, passage_id, direction, observed_at, lane, plate_hash, void_of, source)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bytea[],
                     $7::text[], $8::text[])
ORDER BY 1, 2
ON CONFLICT (facility_id, passage_id) DO NOTHING
RETURNING id, facility_id, plate_hash, void_of
"""

# Both orders of arrival: a void of an existing passage, and a passage whose void came first.
APPLY_VOIDS = """
UPDATE passages p SET voided_by = v.passage_id
FROM passages v
WHERE v.facility_id = p.facility_id AND v.void_of = p.passage_id AND p.voided_by IS NULL
  AND (p.id = ANY($1::int8[]) OR v.id = ANY($1::int8[]))
RETURNING p.facility_id, p.plate_hash
"""

# Locks the facilities' count rows in key order: two workers recounting one lot wait in turn.
LOCK_FACILITIES = """
SELECT f.id, f.capacity FROM facilities f WHERE f.id = ANY($1::text[]) ORDER BY f.id FOR UPDATE
"""

WITH_PASSAGES = "SELECT DISTINCT facility_id FROM passages WHERE facility_id = ANY($1::text[])"

BASE_COUNTS = """
SELECT DISTINCT ON (facility_id) facility_id, observed_at, free FROM count_events
WHERE facility_id = ANY($1::text[]) ORDER BY facility_id, observed_at DESC
"""

SINCE_BASE = """
SELECT id, direction, observed_at, flags, free_after FROM passages
WHERE facility_id = $1 AND observed_at > $2 AND direction IS NOT NULL AND voided_by IS NULL
ORDER BY observed_at, id
"""

SET_FREE_AFTER = """
UPDATE passages p SET free_after = v.free_after, flags = string_to_array(v.flags, ',')
FROM unnest($1::int8[], $2::int4[], $3::text[]) AS v(id, free_after, flags)
WHERE p.id = v.id
"""

UPSERT_COUNT = """
INSERT INTO facility_counts AS f (facility_id, free, total, observed_at, last_seen, source)
SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[], $4::timestamptz[], $4::timestamptz[], $5::text[])
ON CONFLICT (facility_id) DO UPDATE SET
    free = excluded.free, observed_at = excluded.observed_at,
    last_seen = GREATEST(f.last_seen, excluded.last_seen), source = excluded.source,
    total = COALESCE(f.total, excluded.total)
"""

PLATE_PASSAGES = """
SELECT id, facility_id, plate_hash, direction, observed_at, voided_by, entry_id, stay_s, flags
FROM passages
WHERE (facility_id, plate_hash) IN (SELECT * FROM unnest($1::text[], $2::bytea[]))
  AND direction IS NOT NULL
ORDER BY facility_id, plate_hash, observed_at, id
"""

SET_LINKS = """
UPDATE passages p SET entry_id = v.entry_id, stay_s = v.stay_s, flags = string_to_array(v.flags, ',')
FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::text[]) AS v(id, entry_id, stay_s, flags)
WHERE p.id = v.id
"""

PURGE_PLATES = """
UPDATE passages SET plate_hash = NULL WHERE plate_hash IS NOT NULL AND observed_at < $1
"""

STAYS = """
SELECT o.facility_id, i.observed_at AS entered_at, o.observed_at AS left_at, o.stay_s
FROM passages o JOIN passages i ON i.id = o.entry_id
WHERE o.facility_id = ANY($1::text[]) AND o.observed_at >= $2 AND o.observed_at < $3
  AND o.voided_by IS NULL AND o.stay_s IS NOT NULL
ORDER BY o.facility_id, o.observed_at
"""
