"""Reassignment end to end: a hold, an MQTT event making its space occupied (through the real
ingest worker and broker), then the SSE stream reports the new space. And arrival."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.api.main import create_app
from app.core.db import raw_connection
from app.core.settings import Settings
from app.occupancy import service as occupancy
from app.occupancy.messages import Occupancy
from tests.conftest import make_committed_key, poll
from tests.ingest.harness import Ingest, Publisher
from tests.matching.conftest import fetch, set_state

DEST = (41.1068, 122.9952)  # 站前广场停车场
FAR = (41.1115, 122.9952)  # ~520 m north: not arrived


@contextlib.asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port (SSE needs a real streaming transport)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await poll(lambda: server.started, timeout=15)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _events(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                  out: list[dict[str, Any]]) -> None:
    async with client.stream("GET", url, headers=headers) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))


async def _prepare(scratch: Callable[..., Settings]) -> tuple[Settings, dict[str, str]]:
    settings: Settings = scratch(batch_window_ms=0)
    ids = [r["id"] for r in await fetch(settings, "SELECT id FROM spaces")]
    await set_state(settings, ids, occupied=False)
    return settings, await make_committed_key(settings, "driver")


async def test_space_taken_by_someone_else_is_reassigned_and_streamed(
    scratch: Callable[..., Settings], mqtt_url: str, tmp_path: Path
) -> None:
    settings, driver = await _prepare(scratch)
    ingest = Ingest(settings, mqtt_url, tmp_path / "ingest.log").start()
    try:
        await poll(ingest.subscribed, timeout=30)
        async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            body = {"lat": FAR[0], "lon": FAR[1], "dest_lat": DEST[0], "dest_lon": DEST[1]}
            held = (await client.post("/v1/assignments", json=body, headers=driver)).json()
            events: list[dict[str, Any]] = []
            reader = asyncio.create_task(_events(client, f"/v1/assignments/{held['id']}/events", driver, events))
            await poll(lambda: events, timeout=10)
            _publish_occupied(settings, mqtt_url, *await _sensor_of(settings, held["space_id"]))
            await poll(lambda: any(e["status"] == "reassigned" for e in events), timeout=30)
            await client.post(f"/v1/assignments/{held['id']}/cancel", headers=driver)
            await asyncio.wait_for(reader, timeout=10)
    finally:
        ingest.stop()
    moved = next(e for e in events if e["status"] == "reassigned")
    assert events[0]["status"] == "held"
    assert moved["space_id"] not in (None, held["space_id"])
    assert moved["previous_space_ids"] == [held["space_id"]]
    assert events[-1]["status"] == "cancelled"


async def _sensor_of(settings: Settings, space_id: str) -> tuple[str, str]:
    row = (await fetch(settings, "SELECT id, operator_id FROM sensors WHERE space_id = $1", space_id))[0]
    return row["operator_id"], row["id"]


def _publish_occupied(settings: Settings, mqtt_url: str, operator_id: str, sensor_id: str) -> None:
    topic = f"{settings.mqtt_topic_root}/{operator_id}/sensors/{sensor_id}/occupancy"
    payload = json.dumps({"occupied": True, "observed_at": datetime.now(UTC).isoformat()}).encode()
    publisher = Publisher(mqtt_url)
    try:
        publisher.publish([(topic, payload)])
    finally:
        publisher.client.loop_stop()
        publisher.client.disconnect()


async def test_driver_near_their_space_when_it_fills_has_arrived(scratch: Callable[..., Settings]) -> None:
    settings, driver = await _prepare(scratch)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        held = (await client.post("/v1/assignments", json={"lat": FAR[0], "lon": FAR[1], "dest_lat": DEST[0],
                                                           "dest_lon": DEST[1]}, headers=driver)).json()
        url = f"/v1/assignments/{held['id']}"
        near = await client.post(url + "/position", json={"lat": held["lat"], "lon": held["lon"]}, headers=driver)
        await _occupy_through_write_path(settings, held["space_id"])

        async def arrived() -> bool:
            return (await client.get(url, headers=driver)).json()["status"] == "arrived"

        assert await poll(arrived, timeout=30)
    assert near.json()["status"] == "held"


async def _occupy_through_write_path(settings: Settings, space_id: str) -> None:
    operator_id, sensor_id = await _sensor_of(settings, space_id)
    event = Occupancy(sensor_id, space_id, True, datetime.now(UTC), source="http")
    async with raw_connection(settings) as conn, conn.transaction():
        await occupancy.write_batch(conn, [event])
