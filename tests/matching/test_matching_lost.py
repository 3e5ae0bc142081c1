"""Issue 13 item 4: a held space taken by a stranger while the driver is far from where they asked.

The driver asks near 站前广场 (no destination), reports a position 4 km away, and a stranger's car
fills the held space. Re-assignment searches around the point of the original request (not the
driver's latest position): free spaces there → ``reassigned`` near it; none → ``lost`` with
``reason: no_free_space`` on the SSE stream, never ``expired``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from app.core.settings import Settings
from matching.geo import haversine_m
from tests.conftest import make_committed_key, poll
from tests.matching.conftest import fetch, set_state
from tests.matching.test_matching_reassign import _events, _occupy_through_write_path, live_server

ASKED = (41.1068, 122.9952)  # 站前广场停车场: where the driver asks for a space
AWAY = (41.1428, 122.9952)  # 4 km north, outside the district: no space within the radius
RADIUS_M = 400.0


async def _prepare(scratch: Callable[..., Settings]) -> tuple[Settings, dict[str, str], list[str]]:
    settings: Settings = scratch(batch_window_ms=0)
    ids = [r["id"] for r in await fetch(settings, "SELECT id FROM spaces")]
    await set_state(settings, ids, occupied=False)
    return settings, await make_committed_key(settings, "driver"), ids


async def _hold_then_drive_away(client: httpx.AsyncClient, driver: dict[str, str]) -> dict[str, Any]:
    body = {"lat": ASKED[0], "lon": ASKED[1], "radius_m": RADIUS_M}
    held = (await client.post("/v1/assignments", json=body, headers=driver)).json()
    assert held["status"] == "held"
    moved = await client.post(f"/v1/assignments/{held['id']}/position",
                              json={"lat": AWAY[0], "lon": AWAY[1]}, headers=driver)
    assert moved.json()["status"] == "held"
    return dict(held)


async def _within(settings: Settings, radius_m: float, lat: float, lon: float) -> list[str]:
    rows = await fetch(settings, """
        SELECT id FROM spaces WHERE ST_DWithin(geom::geography,
            ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography, $3)""", lat, lon, radius_m)
    return [r["id"] for r in rows]


async def test_taken_space_is_reassigned_near_where_the_driver_asked(scratch: Callable[..., Settings]) -> None:
    settings, driver, _ = await _prepare(scratch)
    assert not await _within(settings, RADIUS_M + 100, *AWAY)  # the old search found nothing there
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        held = await _hold_then_drive_away(client, driver)
        url = f"/v1/assignments/{held['id']}"
        await _occupy_through_write_path(settings, held["space_id"])  # a stranger parks there

        async def settled() -> dict[str, Any] | None:
            state = (await client.get(url, headers=driver)).json()
            return state if state["status"] != "held" else None

        state = await poll(settled, timeout=30)
    assert state["status"] == "reassigned"
    assert state["space_id"] != held["space_id"]
    assert state["previous_space_ids"] == [held["space_id"]]
    assert haversine_m(ASKED[0], ASKED[1], state["lat"], state["lon"]) <= RADIUS_M
    assert state["reason"] is None


async def test_nothing_left_near_the_request_ends_lost_with_reason_on_the_stream(
    scratch: Callable[..., Settings],
) -> None:
    settings, driver, ids = await _prepare(scratch)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        held = await _hold_then_drive_away(client, driver)
        url = f"/v1/assignments/{held['id']}"
        events: list[dict[str, Any]] = []
        reader = asyncio.create_task(_events(client, url + "/events", driver, events))
        await poll(lambda: events, timeout=10)
        others = [i for i in ids if i != held["space_id"]]
        await set_state(settings, others, occupied=True)  # every other space is taken meanwhile
        await _occupy_through_write_path(settings, held["space_id"])
        await asyncio.wait_for(reader, timeout=30)  # the stream ends with the terminal state
        final = (await client.get(url, headers=driver)).json()
        again = await client.post(url + "/position", json={"lat": ASKED[0], "lon": ASKED[1]}, headers=driver)
    assert [e["status"] for e in events] == ["held", "lost"]
    assert events[-1]["reason"] == "no_free_space"
    assert final["status"] == "lost"
    assert final["reason"] == "no_free_space"
    assert final["space_id"] == held["space_id"]
    assert again.status_code == 409  # ended: no further change
    rows = await fetch(settings, "SELECT status, upper(hold) <= now() AS released FROM assignments WHERE id = $1",
                       held["id"])
    assert rows[0]["status"] == "lost"
    assert rows[0]["released"]
