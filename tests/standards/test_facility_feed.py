"""Gate-counted lots feed the change feed: a count message, a passage and a void (MQTT, through
the real broker and `citypark ingest`) each send ``NOTIFY facility_state``, so an NGSI-LD
subscription on ``OffStreetParking`` ``availableSpotNumber`` fires at a local receiver, and the
API's facility snapshot is dropped at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from app.core.settings import Settings
from app.occupancy import service as occupancy
from app.occupancy.messages import Count
from tests.conftest import app_client, make_committed_key, poll
from tests.ingest.harness import Ingest, Publisher
from tests.standards.receiver import Receiver
from tests.standards.test_subscriptions import SUBS, running_notifier

OP, LOT = "shared-parking", "lss-counted-lot"
URN = f"urn:ngsi-ld:OffStreetParking:{LOT}"


def _available(receiver: Receiver) -> list[int]:
    return [e["availableSpotNumber"] for b in receiver.bodies() for e in b["data"]
            if e["id"] == URN and "availableSpotNumber" in e]


async def test_counts_passages_and_voids_notify(fresh_db: Any, mqtt_url: str, tmp_path: Path) -> None:
    settings: Settings = await fresh_db(notify_allow="127.0.0.1")
    operator = await make_committed_key(settings, "operator", OP)
    receiver = await Receiver().start()
    ingest = Ingest(settings, mqtt_url, tmp_path / "ingest.log").start()
    root = f"{settings.mqtt_topic_root}/{OP}/facilities/{LOT}"
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    try:
        async with app_client(settings) as client, running_notifier(settings):
            r = await client.post(SUBS, headers=operator, json={
                "type": "Subscription", "entities": [{"type": "OffStreetParking", "id": URN}],
                "watchedAttributes": ["availableSpotNumber"],
                "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues"}})
            assert r.status_code == 201, r.text
            await poll(ingest.subscribed, timeout=30)
            publisher = Publisher(mqtt_url)
            publisher.publish([(f"{root}/count", json.dumps({"free": 40, "observed_at": t0.isoformat()}).encode())])
            await poll(lambda: 40 in _available(receiver), timeout=30)
            entry = {"direction": "in", "observed_at": (t0 + timedelta(minutes=1)).isoformat(), "passage_id": "e-1"}
            publisher.publish([(f"{root}/passage", json.dumps(entry).encode())])
            await poll(lambda: _available(receiver)[-1:] == [39], timeout=30)
            void = {"void_of": "e-1", "observed_at": (t0 + timedelta(minutes=2)).isoformat(), "passage_id": "v-1"}
            publisher.publish([(f"{root}/passage", json.dumps(void).encode())])
            await poll(lambda: _available(receiver)[-1:] == [40], timeout=30)
            publisher.close()
            assert _available(receiver) == [40, 39, 40]  # one notification per change, none without
    finally:
        ingest.stop()
        await receiver.stop()


async def test_a_count_drops_the_api_facility_snapshot(fresh_db: Any) -> None:
    settings: Settings = await fresh_db()
    async with app_client(settings) as client:
        assert (await client.get("/v1/facilities", params={"lat": 41.112, "lon": 122.997})).status_code == 200
        cache = client.app.state.facility_cache  # type: ignore[attr-defined]
        assert cache.value is not None
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            async with conn.transaction():
                await occupancy.write_batch(conn, [Count(facility_id=LOT, observed_at=datetime.now(UTC), free=12,
                                                         total=None, source="test")])
        finally:
            await conn.close()
        await poll(lambda: cache.value is None, timeout=10)  # no request in between: the NOTIFY did it
