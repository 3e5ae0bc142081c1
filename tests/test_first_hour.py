"""Issue 18, a demo a newcomer understands: `make demo PORT=`, one-line errors instead of
tracebacks, idempotent seeding, a lazy `citypark --help`, the demo reporting a component that
died and printing keys, a quiet enforcement loop, metrics on loopback, progress bars only on a
terminal, and a simulator that backfills a day once and resumes afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import create_engine, create_sessionmaker, raw_connection
from app.core.progress import progress_bar
from app.core.settings import Settings
from app.demo import runner
from app.enforcement import cli as enforce_cli
from app.enforcement.violations import Detected, Sweep
from app.inventory import seed as seed_service
from app.keys import service as keys_service
from app.keys.models import ROLES
from sensors import backfill, simulator
from tests.conftest import BASE_DSN, ROOT, RUN_ID

HEAVY = ("numpy", "scipy", "sqlalchemy", "shapely", "paho", "asyncpg", "fastapi", "geoalchemy2", "uvicorn")


def citypark(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def test_make_demo_takes_a_port() -> None:
    dry = subprocess.run(["make", "-n", "demo", "PORT=8123"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "citypark demo --port 8123" in dry.stdout
    default = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "citypark demo --port 8000" in default.stdout


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys\nfrom app.cli import main\nsys.argv = ['citypark', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert "LOADED []" in out.stdout, out.stdout[-500:]
    for name in ("ingest", "simulate", "enforce", "evaluate", "migrate", "seed"):
        assert name in out.stdout  # the lazy plugin commands are listed all the same
    sim = citypark("simulate", "--help")
    assert sim.returncode == 0
    assert "--backfill-hours" in sim.stdout  # and load when asked for


@pytest.fixture
async def empty_database() -> Any:
    name = f"citypark_t_{RUN_ID}_empty"
    admin = await asyncpg.connect(f"{BASE_DSN}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{BASE_DSN}/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_seed_before_migrate_says_to_migrate_in_one_line(empty_database: str) -> None:
    for args in (("seed", "--demo", "tiedong"), ("seed", "--synthetic", "10")):
        done = await asyncio.to_thread(citypark, *args, env={"CITYPARK_DATABASE_URL": empty_database})
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "error: the database has no citypark tables yet: run `citypark migrate` first"]
    missing = await asyncio.to_thread(citypark, "seed", "--demo", "tiedong",
                                      env={"CITYPARK_DATABASE_URL": empty_database + "_missing"})
    assert missing.stderr.strip().splitlines() == [
        "error: the database does not exist yet: run `citypark migrate` first (it creates it)"]


async def test_import_refuses_unusable_ids_and_nul_in_one_line(db_settings: Settings, tmp_path: Path) -> None:
    feature = {"type": "Feature", "id": "x-lot", "geometry": {"type": "Polygon", "coordinates": [[
        [122.99, 41.11], [122.991, 41.11], [122.991, 41.111], [122.99, 41.111], [122.99, 41.11]]]},
        "properties": {"feature": "facility", "name": "x", "kind": "lot", "capacity": 1}}
    space = {"type": "Feature", "id": "x-1", "geometry": {"type": "Point", "coordinates": [122.9902, 41.1101]},
             "properties": {"feature": "space", "facility_id": "x-lot", "sensor_id": "a/b/#/+"}}
    bad_id, nul = tmp_path / "ids.geojson", tmp_path / "nul.geojson"
    bad_id.write_text(json.dumps({"type": "FeatureCollection", "features": [feature, space]}))
    named = {**feature, "properties": {**feature["properties"], "name": "a\x00b"}}
    nul.write_text(json.dumps({"type": "FeatureCollection", "features": [named]}))
    env = {"CITYPARK_DATABASE_URL": db_settings.database_url}
    for path, says in ((bad_id, "sensor_id 'a/b/#/+' is not a valid id"), (nul, "NUL character")):
        done = await asyncio.to_thread(citypark, "import", str(path), "--operator", "tiedong-city", env=env)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert says in lines[0]


async def test_synthetic_seed_is_idempotent_and_replace_starts_over(fresh_db: Any) -> None:
    settings = await fresh_db()
    async with raw_connection(settings) as conn:
        base = await conn.fetchval("SELECT count(*) FROM spaces")
        first = await seed_service.seed_synthetic(conn, n=1_500, seed=3)
        again = await seed_service.seed_synthetic(conn, n=1_500, seed=3)
        assert await conn.fetchval("SELECT count(*) FROM spaces") == base + 1_500
        assert (first.added, again.added) == (1_500, 0)
        steps: list[tuple[int, int]] = []
        other = await seed_service.seed_synthetic(conn, n=700, seed=4, replace=True,
                                                  advance=lambda done, total: steps.append((done, total)))
        assert other.added == 700
        assert await conn.fetchval("SELECT count(*) FROM spaces") == base + 700
        assert await conn.fetchval("SELECT count(*) FROM sensors WHERE operator_id = 'synthetic'") == 700
        assert steps[-1] == (700, 700)


def test_progress_bar_only_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("spaces", total=10) as advance:  # stderr is captured: not a terminal
        advance(10, 10)
    assert capsys.readouterr().err == ""
    with progress_bar("spaces", total=10, force=True) as advance:
        advance(5, 10)
    assert "5/10" in capsys.readouterr().err


def test_ingest_metrics_listen_on_loopback_by_default() -> None:
    from sensors import metrics

    assert Settings().metrics_host == "127.0.0.1"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.serve(port)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    outside = [a for a in _addresses() if not a.startswith("127.")]
    for address in outside:  # every other interface of this machine is refused
        with pytest.raises(ConnectionRefusedError), socket.create_connection((address, port), timeout=2):
            pass


def _addresses() -> list[str]:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split()
    return [a for a in out if ":" not in a]


def test_the_demo_names_a_component_that_dies() -> None:
    said: list[str] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there: never ready
    dying = runner.Component("simulate", subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]))
    alive = runner.Component("api", subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]))
    try:
        code = runner._watch([alive, dying], f"http://127.0.0.1:{port}", {}, said.append)
    finally:
        runner._stop([alive, dying])
    assert code == 1
    assert said == ["\ncitypark demo: simulate exited while starting (exit code 3); its output is above. "
                    "Stopping the demo."]
    assert not any("is up" in s for s in said)


async def test_the_demo_makes_a_key_of_each_role(db: AsyncSession) -> None:
    made = await runner.demo_keys(db)
    expected = {"driver", "operator (tiedong-city)", "enforcement"} | ({"manager"} & set(ROLES))
    assert set(made) == expected
    roles = {label: (await keys_service.authenticate(db, key=key)) for label, key in made.items()}
    assert roles["driver"] is not None
    assert roles["driver"].role == "driver"
    assert roles["operator (tiedong-city)"] is not None
    assert roles["operator (tiedong-city)"].operator_id == "tiedong-city"
    text = runner.banner("http://127.0.0.1:8123", ["api"], made)
    assert "http://127.0.0.1:8123/" in text
    assert all(key in text for key in made.values())


async def test_enforce_passes_log_at_info_only_when_violations_change(
    db_settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def pass_(self: Sweep, session: Any, *, now: datetime, settings: Settings) -> Detected:
        return Detected(5, 0, {})

    monkeypatch.setattr(Sweep, "run_pass", pass_)
    engine = create_engine(db_settings, pool_size=1)
    sessions, sweep = create_sessionmaker(engine), Sweep()
    caplog.set_level(logging.DEBUG, logger="citypark.enforce")
    levels = []
    try:
        for change in (False, False, True, False):
            if change:
                conn = await asyncpg.connect(db_settings.asyncpg_dsn)
                await conn.execute("INSERT INTO violations (space_id, facility_id, kind, stay_since, started_at, geom) "
                                   "SELECT id, facility_id, 'overstay', now(), now(), geom FROM spaces LIMIT 1")
                await conn.close()
            caplog.clear()
            assert await enforce_cli._pass(sessions, sweep, db_settings)
            levels.append([r.levelno for r in caplog.records])
    finally:
        await engine.dispose()
        conn = await asyncpg.connect(db_settings.asyncpg_dsn)
        await conn.execute("DELETE FROM violations")
        await conn.close()
    assert levels == [[logging.INFO], [logging.DEBUG], [logging.INFO], [logging.DEBUG]]


async def _district(settings: Settings) -> simulator.Simulation:
    return await simulator.load_district(settings, random.Random(5), 1.0)


def _times(messages: list[tuple[str, bytes]]) -> list[datetime]:
    return [datetime.fromisoformat(json.loads(p)["observed_at"]) for t, p in messages if t.endswith("/occupancy")]


async def test_simulator_backfills_a_day_once_and_then_resumes(fresh_db: Any) -> None:
    settings = await fresh_db()
    now = datetime.now(UTC).replace(microsecond=0)  # payloads carry milliseconds
    sim = await _district(settings)
    first = await asyncio.to_thread(backfill.begin(settings, 24), sim, now)
    times = _times(first)
    assert min(times) >= now - timedelta(hours=24, seconds=1)
    assert min(times) < now - timedelta(hours=23)  # a whole day of history
    assert sum(t == now for t in times) == len(sim.spots)  # and every sensor reports now
    assert len(times) > 5 * len(sim.spots)
    assert sim.seeded
    for i in sim.seeded:  # a violation in force now: occupied since before the limit (or the grace)
        spot = sim.spots[i]
        assert spot.occupied
        arrived = max(t for topic, payload in first if spot.sensor_id in topic and topic.endswith("/occupancy")
                      and json.loads(payload)["occupied"] and (t := datetime.fromisoformat(json.loads(payload)[
                          "observed_at"])) < now)
        assert now - arrived >= timedelta(minutes=(spot.max_stay or 5) if not spot.no_parking else 5)
    # the district now has stored states: a restart resumes from them and publishes nothing earlier
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute("UPDATE space_state SET occupied = true, observed_at = $1, last_seen = $1, seq = 7", now)
    finally:
        await conn.close()
    later = now + timedelta(minutes=5)
    again = await asyncio.to_thread(backfill.begin(settings, 24), await _district(settings), later)
    assert set(_times(again)) == {later}
    assert all(json.loads(p)["occupied"] is True and json.loads(p)["seq"] == 8 for t, p in again)


async def test_plain_start_reports_every_parked_car_now(db_settings: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # payloads carry milliseconds
    sim = await _district(db_settings)
    messages = sim.start(now)
    by_sensor: dict[str, list[datetime]] = {}
    for topic, payload in messages:
        by_sensor.setdefault(topic.split("/")[3], []).append(datetime.fromisoformat(json.loads(payload)["observed_at"]))
    assert all(max(times) == now for times in by_sensor.values())  # no sensor looks stale after a start
    assert any(min(times) < now - timedelta(minutes=1) for times in by_sensor.values())  # arrivals backdated
