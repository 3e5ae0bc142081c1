"""Seeding: the demo district (through the inventory importer) and synthetic load-test data."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput
from app.inventory import service as inventory_service

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DISTRICT_BBOX = (122.97, 41.10, 123.02, 41.13)  # lon/lat of the demo district
SYNTHETIC_OPERATOR = "synthetic"
SPACES_PER_FACILITY = 100
CHUNK = 20_000  # spaces per COPY (and per progress step)


def demo_files(name: str) -> list[Path]:
    folder = DEMO_DIR / name
    files = sorted(folder.glob("*.geojson"))
    if not files:
        raise InvalidInput(f"no demo district called {name!r}")
    return files


async def seed_demo(session: AsyncSession, *, name: str = "tiedong") -> list[inventory_service.ImportResult]:
    """Load every operator's inventory file of the demo district (caller commits)."""
    results = []
    for path in demo_files(name):
        doc = json.loads(path.read_text(encoding="utf-8"))
        results.append(await inventory_service.import_inventory(
            session, operator_id=path.stem, doc=doc, operator_name=doc.get("name")
        ))
    return results


@dataclass(frozen=True)
class SyntheticResult:
    spaces: int
    facilities: int
    seconds: float
    added: int = 0  # spaces new in this run (0 when the same N and seed ran before)


async def seed_synthetic(
    conn: asyncpg.Connection, *, n: int, seed: int = 0, replace: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    advance: Callable[[int, int], None] = lambda done, total: None,
) -> SyntheticResult:
    """Create ``n`` spaces (with sensors and state) over the district with COPY, in one transaction.

    Idempotent: the ids are made of ``seed`` and ``n``, so the same command run again adds
    nothing. ``replace`` first removes every earlier synthetic facility (and its spaces,
    sensors, state and history). ``advance(done, n)`` reports spaces written.
    """
    if n <= 0:
        raise InvalidInput("--synthetic needs a positive number of spaces")
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    run = f"{seed}-{n}"
    n_fac = math.ceil(n / SPACES_PER_FACILITY)
    async with conn.transaction():
        if replace:
            removed = await conn.execute("DELETE FROM facilities WHERE operator_id = $1", SYNTHETIC_OPERATOR)
            progress(f"removed {removed.split()[-1]} earlier synthetic facilities")
        await conn.execute(
            "INSERT INTO operators (id, name) VALUES ($1, 'Synthetic load-test operator') "
            "ON CONFLICT DO NOTHING", SYNTHETIC_OPERATOR)
        centres = _facility_centres(rng, n_fac)
        await _copy_facilities(conn, run, centres)
        progress(f"{n_fac} facilities")
        added = 0
        for lo in range(0, n, CHUNK):
            added += await _copy_spaces(conn, run, rng, centres, lo, min(n, lo + CHUNK))
            advance(min(n, lo + CHUNK), n)
    return SyntheticResult(n, n_fac, time.monotonic() - started, added)


def _facility_centres(rng: np.random.Generator, n_fac: int) -> np.ndarray:
    minx, miny, maxx, maxy = DISTRICT_BBOX
    return np.column_stack([rng.uniform(minx, maxx, n_fac), rng.uniform(miny, maxy, n_fac)])


async def _copy_facilities(conn: asyncpg.Connection, run: str, centres: np.ndarray) -> None:
    await conn.execute(
        "CREATE TEMP TABLE syn_fac (id text, lon float8, lat float8) ON COMMIT DROP")
    await conn.copy_records_to_table(
        "syn_fac", records=[(f"syn-{run}-f{i:06d}", float(x), float(y)) for i, (x, y) in enumerate(centres)])
    # Each synthetic facility is a lot of about 80 m × 80 m around its centre.
    await conn.execute("""
        INSERT INTO facilities (id, operator_id, name, kind, geom, entrance, capacity)
        SELECT id, 'synthetic', 'Synthetic lot ' || id, 'lot',
               ST_Expand(ST_SetSRID(ST_MakePoint(lon, lat), 4326), 0.0005),
               ST_SetSRID(ST_MakePoint(lon, lat - 0.0004), 4326), $1
        FROM syn_fac ON CONFLICT (id) DO NOTHING""", SPACES_PER_FACILITY)


async def _copy_spaces(
    conn: asyncpg.Connection, run: str, rng: np.random.Generator, centres: np.ndarray, lo: int, hi: int
) -> int:
    idx = np.arange(lo, hi)
    fac = idx // SPACES_PER_FACILITY
    lon = centres[fac, 0] + rng.uniform(-0.00045, 0.00045, len(idx))
    lat = centres[fac, 1] + rng.uniform(-0.00045, 0.00045, len(idx))
    occupied = rng.random(len(idx)) < 0.6
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS syn_space (id text, fac text, lon float8, lat float8, "
        "occupied bool) ON COMMIT DROP")
    await conn.execute("TRUNCATE syn_space")
    await conn.copy_records_to_table("syn_space", records=zip(
        [f"syn-{run}-s{i:08d}" for i in idx], [f"syn-{run}-f{f:06d}" for f in fac],
        lon.tolist(), lat.tolist(), occupied.tolist(), strict=True))
    now = datetime.now(UTC)
    inserted = await conn.execute("""
        INSERT INTO spaces (id, facility_id, geom)
        SELECT id, fac, ST_SetSRID(ST_MakePoint(lon, lat), 4326) FROM syn_space ON CONFLICT (id) DO NOTHING""")
    await conn.execute("""
        INSERT INTO sensors (id, operator_id, space_id, kind)
        SELECT 'm-' || id, 'synthetic', id, 'magnetometer' FROM syn_space ON CONFLICT (id) DO NOTHING""")
    await conn.execute("""
        INSERT INTO space_state (space_id, occupied, since, observed_at, last_seen, source)
        SELECT id, occupied, $1, $1, $1, 'seed' FROM syn_space ON CONFLICT (space_id) DO NOTHING""", now)
    return int(inserted.split()[-1])
