"""``CITYPARK_DATABASE_READ_URL``: availability reads from a real streaming replica.

A throwaway primary (initdb) and its replica (pg_basebackup -R) on free ports. While the
replica's replay is paused, a change on the primary is *not* seen by availability reads —
so they come from the replica — while holds (and their reads) stay on the primary; once the
replica is further behind than ``read_max_lag_s``, or down, reads move to the primary and
``/readyz`` says so, and they come back to the replica when it has caught up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import migrate as database
from app.core.db import create_engine
from app.core.replica import ReadRouter
from app.core.settings import Settings
from app.inventory import seed as seed_service
from tests.conftest import app_client, make_committed_key, make_settings, poll
from tests.ingest.harness import PrivatePostgres
from tests.scale.harness import Standby

pytestmark = pytest.mark.timeout(240)
FACILITY = "cqgc-lot"


@pytest.fixture(scope="module")
async def pair() -> AsyncIterator[tuple[PrivatePostgres, Standby, Settings]]:
    primary = PrivatePostgres()
    standby: Standby | None = None
    try:
        primary.start()
        settings = make_settings("citypark_replica").model_copy(
            update={"database_url": primary.dsn("citypark_replica")})
        await database.migrate(settings)
        engine = create_engine(settings, pool_size=1)
        async with AsyncSession(engine) as session, session.begin():
            await seed_service.seed_demo(session, name="tiedong")
        await engine.dispose()
        await _sql(primary.dsn("citypark_replica"), """
            INSERT INTO space_state (space_id, occupied, since, observed_at, last_seen, source)
            SELECT id, false, now(), now(), now(), 'test' FROM spaces
            ON CONFLICT (space_id) DO UPDATE SET occupied = false, since = now(), observed_at = now(),
                last_seen = now()""")
        standby = Standby(primary)
        standby.start()
        yield primary, standby, settings.model_copy(update={
            "database_read_url": standby.dsn("citypark_replica"), "read_max_lag_s": 3600.0})
    finally:
        if standby is not None:
            standby.remove()
        primary.remove()


async def _sql(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _replica(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/readyz")).json()["read_replica"]
    return body


async def _name(client: httpx.AsyncClient) -> str:
    response = await client.get(f"/v1/facilities/{FACILITY}")
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


async def test_reads_follow_the_replica_and_fall_back_to_the_primary(pair) -> None:  # type: ignore[no-untyped-def]
    primary, standby, settings = pair
    primary_dsn, replica_dsn = settings.database_url, settings.database_read_url
    driver = await make_committed_key(settings, "driver")
    async with app_client(settings) as client:
        await poll(lambda: _ok(client), timeout=30)
        before = await _name(client)
        await _sql(replica_dsn, "SELECT pg_wal_replay_pause()")
        await _sql(primary_dsn, "UPDATE facilities SET name = name || ' (new)' WHERE id = $1", FACILITY)
        assert await _name(client) == before  # from the paused replica
        assert (await client.get("/v1/facilities/" + FACILITY + "/history")).status_code == 200
        held = await client.post("/v1/assignments", headers=driver, json={"lat": 41.1130, "lon": 122.9950})
        assert held.status_code == 201, held.text  # holds are written on the primary …
        mine = await client.get(f"/v1/assignments/{held.json()['id']}", headers=driver)
        assert mine.status_code == 200  # … and read there
        lagging = await poll(lambda: _lag_over(client, 0.5), timeout=30)
        assert lagging["reads"] == "replica"  # behind, but within read_max_lag_s (an hour here)

        client.app.state.reads.max_lag_s = 0.5  # type: ignore[attr-defined]
        state = await poll(lambda: _reads_from(client, "primary"), timeout=30)
        assert state["detail"].startswith("lagging")
        assert state["ok"] is False
        assert await _name(client) == before + " (new)"
        ready = await client.get("/readyz")
        assert ready.json()["ready"] is True  # the primary serves: still ready

        await _sql(replica_dsn, "SELECT pg_wal_replay_resume()")
        await poll(lambda: _reads_from(client, "replica"), timeout=30)
        assert await _name(client) == before + " (new)"

        standby.stop()
        down = await poll(lambda: _reads_from(client, "primary"), timeout=30)
        assert down["detail"] == "unreachable"
        assert await _name(client) == before + " (new)"
        listed = await client.get("/v1/facilities", params={"lat": 41.113, "lon": 122.995, "radius_m": 5000})
        assert listed.status_code == 200
        assert FACILITY in {f["id"] for f in listed.json()}
        standby.start()
        await poll(lambda: _reads_from(client, "replica"), timeout=60)


async def _ok(client: httpx.AsyncClient) -> bool:
    return (await _replica(client))["ok"] is True


async def _lag_over(client: httpx.AsyncClient, seconds: float) -> dict[str, Any] | None:
    state = await _replica(client)
    return state if (state["lag_s"] or 0) > seconds else None


async def _reads_from(client: httpx.AsyncClient, where: str) -> dict[str, Any] | None:
    state = await _replica(client)
    return state if state["reads"] == where else None


async def test_without_a_read_url_readyz_says_nothing_of_a_replica(client: httpx.AsyncClient) -> None:
    body = (await client.get("/readyz")).json()
    assert "read_replica" not in body


async def test_lag_is_dated_from_the_primary_positions(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    router = ReadRouter(db_settings, engine)
    router._samples.extend([(0.0, 100), (10.0, 200), (20.0, 300)])  # (monotonic time, primary WAL position)
    assert router.lag_s(300, now=25.0) == 0.0  # replayed all the primary had
    assert router.lag_s(250, now=25.0) == 5.0  # misses what the primary had at 20 s
    assert router.lag_s(150, now=25.0) == 15.0
    assert router.lag_s(50, now=25.0) == 25.0  # behind everything sampled: at least that long
    await engine.dispose()
