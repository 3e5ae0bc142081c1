"""The demo district and synthetic seeding, checked in PostGIS."""

from __future__ import annotations

import asyncpg
import pytest

from app.core.db import raw_connection
from app.core.settings import Settings
from app.inventory import seed as seed_service


@pytest.fixture
async def pg(db_settings: Settings):  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(db_settings.asyncpg_dsn)
    yield conn
    await conn.close()


async def test_demo_district_counts(pg: asyncpg.Connection) -> None:
    spaces = await pg.fetchval("SELECT count(*) FROM spaces WHERE facility_id NOT LIKE 'syn-%'")
    assert 1800 <= spaces <= 2300
    kinds = dict(await pg.fetch("SELECT kind, count(*) FROM facilities GROUP BY kind"))
    assert set(kinds) == {"lot", "garage", "curb"}
    assert await pg.fetchval("SELECT count(*) FROM facilities WHERE counted") >= 3
    assert await pg.fetchval("SELECT count(*) FROM facilities WHERE public_hours IS NOT NULL") >= 2
    flags = await pg.fetchrow(
        "SELECT count(*) FILTER (WHERE accessible) a, count(*) FILTER (WHERE ev) e, "
        "count(*) FILTER (WHERE loading) l, count(*) FILTER (WHERE no_parking) n FROM spaces")
    assert all(flags[k] > 0 for k in ("a", "e", "l", "n"))
    assert await pg.fetchval("SELECT count(*) FROM parking_rules WHERE kind = 'time_limit'") > 0
    assert await pg.fetchval("SELECT count(*) FROM parking_rules WHERE kind = 'no_parking'") > 0


async def test_demo_district_lies_in_its_bounding_box(pg: asyncpg.Connection) -> None:
    box = await pg.fetchrow("SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 "
                            "FROM (SELECT ST_Extent(geom) e FROM spaces) s")
    assert 122.97 <= box["x0"] < box["x1"] <= 123.02
    assert 41.10 <= box["y0"] < box["y1"] <= 41.13


async def test_every_space_inside_or_beside_its_facility(pg: asyncpg.Connection) -> None:
    far = await pg.fetchval("""
        SELECT count(*) FROM spaces s JOIN facilities f ON f.id = s.facility_id
        WHERE NOT ST_DWithin(s.geom::geography, f.geom::geography, 30)""")
    assert far == 0
    invalid = await pg.fetchval("SELECT count(*) FROM facilities WHERE NOT ST_IsValid(geom)")
    assert invalid == 0
    assert await pg.fetchval("SELECT count(*) FROM facilities WHERE ST_SRID(geom) <> 4326") == 0


async def test_every_sensor_is_mapped_and_every_space_has_one(pg: asyncpg.Connection) -> None:
    unmapped = await pg.fetchval("""
        SELECT count(*) FROM sensors se LEFT JOIN spaces s ON s.id = se.space_id
        LEFT JOIN facilities f ON f.id = se.facility_id WHERE s.id IS NULL AND f.id IS NULL""")
    assert unmapped == 0
    without = await pg.fetchval(
        "SELECT count(*) FROM spaces s WHERE NOT EXISTS (SELECT 1 FROM sensors WHERE space_id = s.id)")
    assert without == 0
    assert await pg.fetchval("SELECT count(*) FROM space_state") == await pg.fetchval(
        "SELECT count(*) FROM spaces")


async def test_synthetic_seed_creates_n_spaces_with_state(fresh_db) -> None:  # type: ignore[no-untyped-def]
    settings = await fresh_db()
    async with raw_connection(settings) as conn:
        before = await conn.fetchval("SELECT count(*) FROM spaces")
        result = await seed_service.seed_synthetic(conn, n=5_000, seed=7)
        after = await conn.fetchval("SELECT count(*) FROM spaces")
        states = await conn.fetchval(
            "SELECT count(*) FROM space_state st JOIN spaces s ON s.id = st.space_id "
            "WHERE s.facility_id LIKE 'syn-%' AND st.occupied IS NOT NULL")
        sensors = await conn.fetchval("SELECT count(*) FROM sensors WHERE operator_id = 'synthetic'")
    assert result.spaces == 5_000
    assert after - before == 5_000
    assert states == 5_000
    assert sensors == 5_000
