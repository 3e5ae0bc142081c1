"""Many drivers, one free space, several API processes: exactly one hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

import pytest

from app.core.settings import Settings
from tests.conftest import app_client, make_committed_key
from tests.matching.conftest import fetch, set_state

LAT, LON = 41.1068, 122.9952


@pytest.mark.parametrize("window_ms", [0, 200])
async def test_simultaneous_requests_for_one_free_space_make_one_hold(
    scratch: Callable[..., Settings], window_ms: int
) -> None:
    settings = scratch(batch_window_ms=window_ms)
    ids = [r["id"] for r in await fetch(
        settings, "SELECT id FROM spaces ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)", LON, LAT)]
    await set_state(settings, ids[1:], occupied=True)
    await set_state(settings, ids[:1], occupied=False)
    keys = [await make_committed_key(settings, "driver") for _ in range(4)]
    async with AsyncExitStack() as stack:  # three app instances = three API processes
        clients = [await stack.enter_async_context(app_client(settings)) for _ in range(3)]
        answers = await asyncio.gather(*(
            clients[i % 3].post("/v1/assignments", json={"lat": LAT, "lon": LON}, headers=keys[i % 4])
            for i in range(30)))
    codes = sorted(a.status_code for a in answers)
    holds = await fetch(settings, "SELECT space_id FROM assignments WHERE status IN ('held', 'reassigned')")
    assert codes == [201] + [409] * 29
    assert [h["space_id"] for h in holds] == [ids[0]]
