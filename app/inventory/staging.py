"""Set-based writes of an inventory: COPY into temporary staging tables, then a few statements.

No statement binds one parameter per row (asyncpg allows 32,767 arguments a query), so a file
of any size costs the same dozen statements. Everything runs on the caller's connection and in
its transaction: the caller commits or rolls back (all or nothing). Re-importing the same file
rewrites nothing: updates carry ``IS DISTINCT FROM`` guards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from app.core.errors import Forbidden, InvalidInput

FACILITY_COLUMNS = ("id", "name", "kind", "geom", "entrance", "capacity", "counted", "opening_hours",
                    "public_hours", "fee", "closed", "timezone")
SPACE_COLUMNS = ("id", "facility_id", "lon", "lat", "accessible", "ev", "loading", "no_parking",
                 "sensor_id", "sensor_kind", "dev_eui", "sensor_model")
RULE_COLUMNS = ("facility_id", "space_id", "kind", "max_stay_minutes", "days", "day_mask", "start_time",
                "end_time", "note")

CREATE = """
DROP TABLE IF EXISTS inv_facility, inv_space, inv_rule;
CREATE TEMP TABLE inv_facility (id text PRIMARY KEY, name text, kind text, geom bytea, entrance bytea,
    capacity int, counted bool, opening_hours text, public_hours text, fee text, closed bool, timezone text
) ON COMMIT DROP;
CREATE TEMP TABLE inv_space (id text, facility_id text, lon float8, lat float8, accessible bool, ev bool,
    loading bool, no_parking bool, sensor_id text, sensor_kind text, dev_eui text, sensor_model text
) ON COMMIT DROP;
CREATE TEMP TABLE inv_rule (facility_id text, space_id text, kind text, max_stay_minutes int, days text,
    day_mask int, start_time time, end_time time, note text) ON COMMIT DROP;
"""


async def create(conn: asyncpg.Connection) -> None:
    """Fresh staging tables (dropped at commit; a second import in one transaction starts clean)."""
    await conn.execute(CREATE)


async def copy(conn: asyncpg.Connection, facilities: Sequence[tuple[Any, ...]], spaces: Sequence[tuple[Any, ...]],
               rules: Sequence[tuple[Any, ...]]) -> None:
    for table, rows, columns in (("inv_facility", facilities, FACILITY_COLUMNS), ("inv_space", spaces, SPACE_COLUMNS),
                                 ("inv_rule", rules, RULE_COLUMNS)):
        if rows:
            await conn.copy_records_to_table(table, records=rows, columns=columns)


async def index(conn: asyncpg.Connection) -> None:
    """Indexes on the staged spaces once they are all in (cheaper than maintaining them per COPY)."""
    await conn.execute("CREATE INDEX ON inv_space (id); CREATE INDEX ON inv_space (sensor_id); "
                       "CREATE INDEX ON inv_space (facility_id); "
                       "ANALYZE inv_space; ANALYZE inv_facility; ANALYZE inv_rule")


async def check(conn: asyncpg.Connection, operator_id: str) -> None:
    """Whole-file and database checks on the staged rows; InvalidInput or Forbidden naming the first."""
    if dup := await conn.fetchval(
            "SELECT sensor_id FROM inv_space WHERE sensor_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1 LIMIT 1"):
        raise InvalidInput(f"sensor {dup!r} is on more than one space")
    if dup := await conn.fetchval(
            "SELECT dev_eui FROM inv_space WHERE dev_eui IS NOT NULL GROUP BY 1 HAVING count(*) > 1 LIMIT 1"):
        raise InvalidInput(f"dev_eui {dup!r} is on more than one sensor")
    await _check_ownership(conn, operator_id)
    if unknown := await conn.fetchval("""
            SELECT DISTINCT s.facility_id FROM inv_space s
            WHERE NOT EXISTS (SELECT 1 FROM inv_facility f WHERE f.id = s.facility_id)
              AND NOT EXISTS (SELECT 1 FROM facilities f WHERE f.id = s.facility_id)
            ORDER BY 1 LIMIT 1"""):
        raise InvalidInput(f"unknown facility {unknown!r} referenced by a space")


OWNERSHIP = (
    ("facility {!r} belongs to another operator", """
        SELECT f.id FROM facilities f JOIN (SELECT id FROM inv_facility UNION SELECT facility_id FROM inv_space) t
          ON t.id = f.id WHERE f.operator_id <> $1 LIMIT 1"""),
    ("sensor {!r} belongs to another operator", """
        SELECT n.id FROM sensors n JOIN inv_space s ON s.sensor_id = n.id WHERE n.operator_id <> $1 LIMIT 1"""),
    ("dev_eui {!r} is a sensor of another operator", """
        SELECT n.dev_eui FROM sensors n JOIN inv_space s ON s.dev_eui = n.dev_eui WHERE n.operator_id <> $1
        LIMIT 1"""),
    ("space {!r} belongs to another operator", """
        SELECT p.id FROM spaces p JOIN inv_space s ON s.id = p.id JOIN facilities f ON f.id = p.facility_id
        WHERE f.operator_id <> $1 LIMIT 1"""),
)


async def _check_ownership(conn: asyncpg.Connection, operator_id: str) -> None:
    """An operator may not overwrite another operator's facilities, sensors or spaces."""
    for message, sql in OWNERSHIP:
        if (found := await conn.fetchval(sql, operator_id)) is not None:
            raise Forbidden(message.format(found))


WRITES = (
    """INSERT INTO facilities AS t (id, operator_id, name, kind, geom, entrance, capacity, counted, opening_hours,
                                    public_hours, fee, closed, timezone)
       SELECT id, $1, name, kind, ST_GeomFromWKB(geom, 4326), ST_GeomFromWKB(entrance, 4326), capacity, counted,
              opening_hours, public_hours, fee, closed, timezone FROM inv_facility
       ON CONFLICT (id) DO UPDATE SET operator_id = EXCLUDED.operator_id, name = EXCLUDED.name,
           kind = EXCLUDED.kind, geom = EXCLUDED.geom, entrance = EXCLUDED.entrance, capacity = EXCLUDED.capacity,
           counted = EXCLUDED.counted, opening_hours = EXCLUDED.opening_hours, public_hours = EXCLUDED.public_hours,
           fee = EXCLUDED.fee, closed = EXCLUDED.closed, timezone = EXCLUDED.timezone, updated_at = now()
       WHERE (t.name, t.kind, t.capacity, t.counted, t.opening_hours, t.public_hours, t.fee, t.closed, t.timezone)
             IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.capacity, EXCLUDED.counted,
                               EXCLUDED.opening_hours, EXCLUDED.public_hours, EXCLUDED.fee, EXCLUDED.closed,
                               EXCLUDED.timezone)
          OR NOT ST_OrderingEquals(t.geom, EXCLUDED.geom) OR NOT ST_OrderingEquals(t.entrance, EXCLUDED.entrance)""",
    """INSERT INTO facility_counts AS t (facility_id, total) SELECT id, capacity FROM inv_facility WHERE counted
       ON CONFLICT (facility_id) DO UPDATE SET total = EXCLUDED.total WHERE t.total IS DISTINCT FROM EXCLUDED.total""",
    """INSERT INTO spaces AS t (id, facility_id, geom, accessible, ev, loading, no_parking)
       SELECT id, facility_id, ST_SetSRID(ST_MakePoint(lon, lat), 4326), accessible, ev, loading, no_parking
       FROM inv_space
       ON CONFLICT (id) DO UPDATE SET facility_id = EXCLUDED.facility_id, geom = EXCLUDED.geom,
           accessible = EXCLUDED.accessible, ev = EXCLUDED.ev, loading = EXCLUDED.loading,
           no_parking = EXCLUDED.no_parking
       WHERE (t.facility_id, t.accessible, t.ev, t.loading, t.no_parking)
             IS DISTINCT FROM (EXCLUDED.facility_id, EXCLUDED.accessible, EXCLUDED.ev, EXCLUDED.loading,
                               EXCLUDED.no_parking)
          OR NOT ST_OrderingEquals(t.geom, EXCLUDED.geom)""",
    "INSERT INTO space_state (space_id) SELECT id FROM inv_space ON CONFLICT DO NOTHING",
    # DevEUIs are unique and may move between this operator's sensors: free them first.
    """UPDATE sensors n SET dev_eui = NULL FROM inv_space s
       WHERE n.dev_eui = s.dev_eui AND n.id IS DISTINCT FROM s.sensor_id""",
    # A space's sensor may have been swapped: free the space for the new sensor id first.
    """DELETE FROM sensors n USING inv_space s
       WHERE n.space_id = s.id AND s.sensor_id IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM inv_space u WHERE u.sensor_id = n.id)""",
    """INSERT INTO sensors AS t (id, operator_id, space_id, kind, dev_eui, sensor_model)
       SELECT sensor_id, $1, id, sensor_kind, dev_eui, sensor_model FROM inv_space WHERE sensor_id IS NOT NULL
       ON CONFLICT (id) DO UPDATE SET space_id = EXCLUDED.space_id, kind = EXCLUDED.kind,
           dev_eui = EXCLUDED.dev_eui, sensor_model = EXCLUDED.sensor_model
       WHERE (t.space_id, t.kind, t.dev_eui, t.sensor_model)
             IS DISTINCT FROM (EXCLUDED.space_id, EXCLUDED.kind, EXCLUDED.dev_eui, EXCLUDED.sensor_model)""",
    # The file's rules replace the stored ones of every facility and space it names.
    # (two joins, not one ``IN … OR IN …``: PostgreSQL would scan the staged ids once per rule)
    "DELETE FROM parking_rules r USING inv_facility f WHERE r.facility_id = f.id",
    "DELETE FROM parking_rules r USING inv_space s WHERE r.space_id = s.id",
    """INSERT INTO parking_rules (facility_id, space_id, kind, max_stay_minutes, days, day_mask, start_time,
                                  end_time, note)
       SELECT facility_id, space_id, kind, max_stay_minutes, days, day_mask, start_time, end_time, note
       FROM inv_rule""",
)


async def write(conn: asyncpg.Connection, operator_id: str, step: Any = None) -> None:
    """Upsert the staged rows (the operator row exists); ``step(done, total)`` after each statement."""
    for i, sql in enumerate(WRITES):
        await (conn.execute(sql, operator_id) if "$1" in sql else conn.execute(sql))
        if step is not None:
            step(i + 1, len(WRITES))


async def check_stored_capacity(conn: asyncpg.Connection) -> None:
    """Capacity counts spaces already stored too (a file may add spaces to a stored facility).

    Runs after the writes, in the caller's transaction: raising makes the caller roll back.
    """
    over = await conn.fetchrow("""
        SELECT f.id, f.capacity, count(*) AS n
        FROM (SELECT id FROM inv_facility UNION SELECT facility_id FROM inv_space) t
        JOIN facilities f ON f.id = t.id JOIN spaces p ON p.facility_id = f.id
        WHERE NOT f.counted GROUP BY f.id, f.capacity HAVING count(*) > f.capacity LIMIT 1""")
    if over is not None:
        raise InvalidInput(f"feature {over['id']!r}: capacity {over['capacity']} but {over['n']} spaces stored "
                           "with this file")


async def drop(conn: asyncpg.Connection) -> None:
    await conn.execute("DROP TABLE IF EXISTS inv_facility, inv_space, inv_rule")
