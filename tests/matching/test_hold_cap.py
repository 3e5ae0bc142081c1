"""Issue 18: one driver key cannot hold half the district. A key has at most
``max_holds_per_driver`` active holds (default 1), a fleet key its own ``max_holds``; one more
is 409 ``hold_limit``, on the route, on the fast path and under concurrent requests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import create_engine
from app.core.settings import Settings
from app.keys import service as keys_service
from tests.conftest import ROOT, app_client, make_committed_key
from tests.matching.conftest import fetch, set_state

LAT, LON = 41.1068, 122.9952  # 站前广场停车场
BODY = {"lat": LAT, "lon": LON}


async def free_district(settings: Settings) -> None:
    await set_state(settings, [r["id"] for r in await fetch(settings, "SELECT id FROM spaces")], occupied=False)


async def fleet_key(settings: Settings, max_holds: int) -> dict[str, str]:
    engine = create_engine(settings, pool_size=1)
    try:
        async with AsyncSession(engine) as session, session.begin():
            plain, _ = await keys_service.create_key(session, role="driver", max_holds=max_holds)
    finally:
        await engine.dispose()
    return {"Authorization": f"Bearer {plain}"}


async def test_one_active_hold_per_driver_key_by_default(scratch: Callable[..., Settings]) -> None:
    settings = scratch(batch_window_ms=0)
    await free_district(settings)
    driver = await make_committed_key(settings, "driver")
    async with app_client(settings) as client:
        first = await client.post("/v1/assignments", json=BODY, headers=driver)  # the route (key not cached)
        second = await client.post("/v1/assignments", json=BODY, headers=driver)  # the fast path
        assert first.status_code == 201, first.text
        assert second.status_code == 409, second.text
        assert second.json()["error"] == "hold_limit"
        assert "at most 1" in second.json()["detail"]
        assert (await client.post(f"/v1/assignments/{first.json()['id']}/cancel", headers=driver)).status_code == 200
        third = await client.post("/v1/assignments", json=BODY, headers=driver)
        assert third.status_code == 201, third.text
        other = await client.post("/v1/assignments", json=BODY, headers=await make_committed_key(settings, "driver"))
        assert other.status_code == 201, other.text  # the cap is per key
    held = await fetch(settings, "SELECT key_id, count(*) AS n FROM assignments WHERE status = 'held' GROUP BY key_id")
    assert sorted(r["n"] for r in held) == [1, 1]


async def test_concurrent_requests_of_one_key_get_one_hold(scratch: Callable[..., Settings]) -> None:
    settings = scratch(batch_window_ms=0)
    await free_district(settings)
    driver = await make_committed_key(settings, "driver")
    async with app_client(settings) as client:
        await client.get("/v1/assignments/00000000-0000-0000-0000-000000000000", headers=driver)  # key cached
        answers = await asyncio.gather(*(client.post("/v1/assignments", json=BODY, headers=driver) for _ in range(12)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 11
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"hold_limit"}
    rows = await fetch(settings, "SELECT count(*) AS n FROM assignments WHERE status = 'held'")
    assert rows[0]["n"] == 1
    fresh = await make_committed_key(settings, "driver")  # not cached: every request takes the route
    async with app_client(settings) as client:
        answers = await asyncio.gather(*(client.post("/v1/assignments", json=BODY, headers=fresh) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5


async def test_a_fleet_key_and_the_setting_allow_more(scratch: Callable[..., Settings]) -> None:
    settings = scratch(batch_window_ms=0)
    await free_district(settings)
    fleet = await fleet_key(settings, 3)
    async with app_client(settings) as client:
        codes = [(await client.post("/v1/assignments", json=BODY, headers=fleet)).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 409, 409]
    wider = settings.model_copy(update={"max_holds_per_driver": 2})
    driver = await make_committed_key(wider, "driver")
    admin = await make_committed_key(wider, "admin")
    async with app_client(wider) as client:
        codes = [(await client.post("/v1/assignments", json=BODY, headers=driver)).status_code for _ in range(3)]
        by_admin = [(await client.post("/v1/assignments", json=BODY, headers=admin)).status_code for _ in range(3)]
    assert codes == [201, 201, 409]
    assert by_admin == [201, 201, 201]  # admin keys are not capped


def test_keys_create_takes_max_holds_for_driver_keys_only(scratch_db: Settings) -> None:
    env = {**os.environ, "CITYPARK_DATABASE_URL": scratch_db.database_url}
    cli = [sys.executable, "-c", "from app.cli import main; main()", "keys", "create"]
    made = subprocess.run([*cli, "--role", "driver", "--max-holds", "40"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    rows = asyncio.run(fetch(scratch_db, "SELECT max_holds FROM api_keys WHERE key_hash = $1",
                             keys_service.hash_key(key)))
    assert rows[0]["max_holds"] == 40
    refused = subprocess.run([*cli, "--role", "enforcement", "--max-holds", "4"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: invalid_input: --max-holds is for driver keys, between 1 and {keys_service.MAX_HOLDS_LIMIT}"]


async def test_a_fleet_keys_concurrent_requests_share_a_batch_and_keep_the_cap(
        scratch: Callable[..., Settings]) -> None:
    """The cap is counted under the key's lock, but the requests it admits run concurrently: one
    key's requests are solved together in a batch window instead of one window each (the bench's
    fleet key went from ~3,000 to 5 requests/s when the lock covered the whole request)."""
    settings = scratch(batch_window_ms=300, batch_max=16)
    await free_district(settings)
    fleet = await fleet_key(settings, 5)
    async with app_client(settings) as client:
        transport = client._transport
        runtime = transport.app.state.matching  # type: ignore[attr-defined]
        sizes: list[int] = []
        run = runtime.batcher._run

        async def recording(items: list[object]) -> None:
            sizes.append(len(items))
            await run(items)

        runtime.batcher._run = recording
        await client.get("/v1/assignments/00000000-0000-0000-0000-000000000000", headers=fleet)  # key cached
        answers = await asyncio.gather(*(client.post("/v1/assignments", json=BODY, headers=fleet) for _ in range(9)))
    assert sorted(a.status_code for a in answers) == [201] * 5 + [409] * 4
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"hold_limit"}
    assert max(sizes) == 5, sizes  # the five admitted requests were solved in one batch
    rows = await fetch(settings, "SELECT count(*) AS n FROM assignments WHERE status = 'held'")
    assert rows[0]["n"] == 5
