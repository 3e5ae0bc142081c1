"""`citypark ingest` end to end: a private broker, a fresh database, the real command."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import poll
from tests.ingest.harness import Publisher, assert_history_and_state, count_rows, make_truth, sensors_of


async def test_events_counts_heartbeats_and_rejects_flow_through(fresh_db: Any, broker: Any,
                                                                 ingest_factory: Any) -> None:
    settings = await fresh_db()
    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    truth = make_truth(settings, await sensors_of(settings, 50), 20)
    root = settings.mqtt_topic_root
    now = truth.events[-1]["observed_at"].isoformat()
    extra = [
        (f"{root}/zhanqian-underground/facilities/zqdxj-garage/count", json.dumps(
            {"free": 37, "total": 420, "observed_at": now}).encode()),
        (f"{root}/tiedong-city/sensors/mag-001000/heartbeat", json.dumps(
            {"observed_at": now, "battery_v": 3.3, "rssi_dbm": -101}).encode()),
        (f"{root}/tiedong-city/sensors/nope/occupancy", b'{"occupied": true, "observed_at": "2026-01-01T00:00:00Z"}'),
        (f"{root}/tiedong-city/sensors/mag-000001/occupancy", b"{oops"),
    ]
    publisher = Publisher(broker.url)
    publisher.publish(truth.messages + extra)
    publisher.close()
    await poll(lambda: count_rows(settings, "SELECT count(*) FROM rejected_messages"), timeout=20)
    await poll(lambda: _n_events(settings, len(truth.events)), timeout=20)
    await assert_history_and_state(settings, truth)
    assert await count_rows(settings, "SELECT free FROM facility_counts WHERE facility_id = 'zqdxj-garage'") == 37
    await poll(lambda: count_rows(settings, "SELECT count(*) FROM sensors WHERE id = 'mag-001000' "
                                  "AND rssi_dbm = -101"), timeout=10)
    reasons = await _reasons(settings)
    assert sorted(r.split(":")[0] for r in reasons) == ["bad_json", "unknown_sensor"]
    assert ingest.alive()
    assert ingest.stop() == 0  # a clean stop on SIGTERM


async def _n_events(settings: Any, n: int) -> bool:
    return await count_rows(settings, "SELECT count(*) FROM occupancy_events") >= n


async def _reasons(settings: Any) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return [r["reason"] for r in await conn.fetch("SELECT reason FROM rejected_messages")]
    finally:
        await conn.close()
