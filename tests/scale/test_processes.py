"""More than one process: ``citypark serve --workers 2`` and ``citypark ingest --workers 2``.

Every request goes over a connection whose serving worker the test has read from the kernel,
so each check runs against both API processes: one active hold per space under 64 concurrent
requests while two ingest workers write occupancy, a rate limit counted once for both, and a
revoked key refused by both — by notification, since the key cache here trusts keys for an hour.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.core.settings import Settings
from tests.conftest import MQTT_URL, make_committed_key, poll
from tests.ingest.harness import Ingest, Publisher
from tests.scale.harness import ROOT, Conn, Serve, connections_on_every_worker, settings_env

pytestmark = pytest.mark.timeout(300)
LIMIT = 20
CENTRE = {"lat": 41.1130, "lon": 122.9950}  # 站前 / 市府广场, where the demo district is densest


async def _execute(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def cluster(fresh_db: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[tuple[Settings, Serve, Ingest]]:
    settings: Settings = await fresh_db(rate_limit=f"{LIMIT}/minute", mqtt_url=MQTT_URL)
    await _execute(settings, """
        INSERT INTO space_state (space_id, occupied, since, observed_at, last_seen, source)
        SELECT id, false, now(), now(), now(), 'test' FROM spaces
        ON CONFLICT (space_id) DO UPDATE SET occupied = false, since = now(), observed_at = now(),
            last_seen = now()""")
    logs = tmp_path_factory.mktemp("processes")
    ingest = Ingest(settings, MQTT_URL, logs / "ingest.log", workers=2).start()
    serve = Serve(settings_env(settings, CITYPARK_KEY_CACHE_TTL_S="3600",
                               CITYPARK_RATE_LIMIT_PREFIX=f"citypark-test:{secrets.token_hex(6)}"),
                  logs / "serve.log").start()
    try:
        await poll(lambda: len(serve.worker_pids()) == 2, timeout=60)
        await poll(ingest.subscribed, timeout=60)
        yield settings, serve, ingest
    finally:
        serve.stop()
        ingest.stop()


async def _close(conns: list[Conn]) -> None:
    await asyncio.gather(*(c.close() for c in conns))


def _occupancy(settings: Settings, sensors: list[asyncpg.Record]) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC).isoformat()
    return [(f"{settings.mqtt_topic_root}/{s['operator_id']}/sensors/{s['id']}/occupancy",
             json.dumps({"occupied": True, "observed_at": now, "seq": 1}).encode()) for s in sensors]


async def test_no_space_gets_two_holds_from_64_requests_over_both_processes(cluster) -> None:  # type: ignore[no-untyped-def]
    settings, serve, ingest = cluster
    keys = [await make_committed_key(settings, "driver") for _ in range(8)]
    conns = await connections_on_every_worker(serve, 64)
    far = await _execute(settings, """
        SELECT se.id, se.operator_id, se.space_id FROM sensors se JOIN spaces s ON s.id = se.space_id
        ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326) DESC LIMIT 300""",
        CENTRE["lon"], CENTRE["lat"])
    publisher = Publisher(MQTT_URL)
    try:
        publisher.stream(_occupancy(settings, far), pause_every=50)  # both ingest workers write meanwhile
        answers = await asyncio.gather(*(
            c.request("POST", "/v1/assignments", keys[i % len(keys)], CENTRE) for i, c in enumerate(conns)))
        publisher.join()
    finally:
        publisher.close()
        await _close(conns)
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {201, 409}, statuses
    served = Counter(c.worker for c, (status, _, _) in zip(conns, answers, strict=True) if status == 201)
    assert len(served) == 2, f"holds made by {served}: both processes must have assigned"
    held = [body["space_id"] for status, _, body in answers if status == 201]
    assert len(held) == len(set(held)), "one space was handed to two drivers"
    doubled = await _execute(settings, """
        SELECT space_id, count(*) FROM assignments
        WHERE status IN ('held', 'reassigned') AND space_id IS NOT NULL GROUP BY space_id HAVING count(*) > 1""")
    assert doubled == []
    written = await poll(lambda: _count_occupied(settings, [r["space_id"] for r in far]), timeout=60)
    assert written == len(far)  # the ingest workers' writes landed alongside the holds


async def _count_occupied(settings: Settings, spaces: list[str]) -> int | None:
    rows = await _execute(settings, "SELECT count(*) AS n FROM space_state WHERE occupied AND space_id = ANY($1)",
                          spaces)
    return rows[0]["n"] if rows[0]["n"] == len(spaces) else None


async def test_a_rate_limit_is_counted_once_across_both_processes(cluster) -> None:  # type: ignore[no-untyped-def]
    settings, serve, _ = cluster
    conns = await connections_on_every_worker(serve, 6)
    try:
        driver = await make_committed_key(settings, "driver")
        by_key = [await conns[i % 6].request("GET", "/v1/facilities", driver) for i in range(LIMIT + 10)]
        assert sum(status == 200 for status, _, _ in by_key) == LIMIT
        # uvicorn takes X-Forwarded-For from 127.0.0.1 (a proxy): this test's own client address
        me = {"X-Forwarded-For": "198.51.100.7"}
        anonymous = [await conns[i % 6].request("GET", "/v1/facilities", me) for i in range(LIMIT + 10)]
        assert sum(status == 200 for status, _, _ in anonymous) == LIMIT
        assert {status for status, _, _ in anonymous[LIMIT:]} == {429}
        assert all(int(headers["retry-after"]) >= 1 for status, headers, _ in anonymous if status == 429)
        made_up = [await conns[i % 6].request(
            "GET", "/v1/facilities", {**me, "Authorization": f"Bearer cpk_{secrets.token_urlsafe(32)}"})
            for i in range(6)]
        assert {status for status, _, _ in made_up} == {429}  # a new token per request is still this address
    finally:
        await _close(conns)


async def test_a_revoked_key_is_refused_by_both_processes(cluster) -> None:  # type: ignore[no-untyped-def]
    settings, serve, _ = cluster
    key = await make_committed_key(settings, "driver")
    conns = await connections_on_every_worker(serve, 4)
    path = f"/v1/assignments/{uuid.uuid4()}"
    try:
        assert [(await c.request("GET", path, key))[0] for c in conns] == [404] * 4  # known (cached) everywhere
        revoke = subprocess.run(
            [sys.executable, "-c", "from app.cli import main; main()", "keys", "revoke",
             key["Authorization"].removeprefix("Bearer ")],
            env=settings_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert revoke.returncode == 0, revoke.stderr

        async def refused_everywhere() -> bool:
            return all([(await c.request("GET", path, key))[0] == 401 for c in conns])

        await poll(refused_everywhere, timeout=10)  # a cached key lives an hour here: only NOTIFY can do it
        status, _, body = await conns[0].request("POST", "/v1/assignments", key, CENTRE)
        assert (status, body["error"]) == (401, "unauthorized")
    finally:
        await _close(conns)


def test_logs_have_no_tracebacks(cluster) -> None:  # type: ignore[no-untyped-def]
    _, serve, ingest = cluster
    assert "Traceback" not in serve.log()
    assert "Traceback" not in Path(ingest.log_path).read_text(errors="replace")
