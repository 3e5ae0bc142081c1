"""NGSI-LD subscriptions: who may subscribe, validation, the SSRF rules, and notifications end
to end (an MQTT event through the real broker and `citypark ingest` → a POST at a local
receiver), watchedAttributes and q, throttling, expiry, retries against a dead endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.core.settings import Settings
from app.standards.ngsi_ld import ssrf
from app.standards.ngsi_ld.notifier import Notifier
from tests.conftest import app_client, make_committed_key, poll
from tests.ingest.harness import Ingest, Publisher
from tests.standards.receiver import Receiver

SUBS = "/ngsi-ld/v1/subscriptions"


def subscription(uri: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Subscription", "entities": [{"type": "ParkingSpot"}], "watchedAttributes": ["status"],
            "notification": {"endpoint": {"uri": uri}, "format": "keyValues"}, **extra}


# --- the SSRF rules (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(("allow", "host", "addresses", "ok"), [
    ("", "example.org", ["93.184.216.34"], True),
    ("", "localhost", ["127.0.0.1"], False),
    ("", "intranet", ["10.1.2.3"], False),
    ("", "metadata", ["169.254.169.254"], False),
    ("", "v6", ["::1"], False),
    ("", "mapped", ["::ffff:192.168.1.1"], False),
    ("", "cgnat", ["100.64.0.1"], False),
    ("127.0.0.1", "127.0.0.1", ["127.0.0.1"], True),
    ("10.0.0.0/8", "intranet", ["10.1.2.3"], True),
    ("10.0.0.0/8", "example.org", ["93.184.216.34"], False),  # a set list restricts to itself
    ("platform.city.example", "platform.city.example", ["10.9.9.9"], True),
    ("", "split", ["93.184.216.34", "10.0.0.1"], False),  # every address must pass
])
def test_ssrf_rules(allow: str, host: str, addresses: list[str], ok: bool) -> None:
    rules = ssrf.AllowList.parse(allow)
    parsed = [ipaddress.ip_address(a) for a in addresses]
    if ok:
        ssrf.check_addresses(host, parsed, rules)
    else:
        with pytest.raises(ssrf.EndpointRefused):
            ssrf.check_addresses(host, parsed, rules)


@pytest.mark.parametrize("uri", ["ftp://example.org/x", "http:///nohost", "http://u:p@example.org/",
                                 "file:///etc/passwd", "http://example.org:99999/"])
def test_ssrf_refuses_bad_uris(uri: str) -> None:
    with pytest.raises(ssrf.EndpointRefused):
        ssrf.check_uri(uri)


# --- the API ------------------------------------------------------------------------------------------


async def test_who_may_subscribe_and_validation(client: httpx.AsyncClient, make_key: Any) -> None:
    operator = await make_key("operator", "tiedong-city")
    body = subscription("http://127.0.0.1:9/notify")
    assert (await client.post(SUBS, json=body)).status_code == 401
    assert (await client.post(SUBS, json=body, headers=await make_key("driver"))).status_code == 403
    r = await client.post(SUBS, json=body, headers=operator)  # loopback, not allowed by default
    assert r.status_code == 400
    assert "CITYPARK_NOTIFY_ALLOW" in r.json()["detail"]
    for bad in ({"type": "Sub"}, {**body, "notification": {}}, {**body, "q": "status==("},
                {**body, "throttling": -1}, {**body, "expiresAt": "2000-01-01T00:00:00Z"},
                {**body, "geoQ": {"georel": "near", "geometry": "Point", "coordinates": [1, 2]}},
                {k: v for k, v in body.items() if k not in ("entities", "watchedAttributes")}):
        r = await client.post(SUBS, json=bad, headers=operator)
        assert r.status_code == 400, bad
        assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")


async def test_create_list_get_delete(fresh_db: Any) -> None:
    settings: Settings = await fresh_db(notify_allow="127.0.0.1")
    operator = await make_committed_key(settings, "operator", "tiedong-city")
    other = await make_committed_key(settings, "operator", "shared-parking")
    async with app_client(settings) as client:
        r = await client.post(SUBS, json=subscription("http://127.0.0.1:9/n", throttling=5), headers=operator)
        assert r.status_code == 201
        location = r.headers["location"]
        got = (await client.get(location, headers=operator)).json()
        assert got["throttling"] == 5
        assert got["status"] == "active"
        assert got["notification"]["timesSent"] == 0
        assert (await client.get(location, headers=other)).status_code == 404
        listed = await client.get(SUBS, headers=operator)
        assert [s["id"] for s in listed.json()] == [got["id"]]
        assert listed.headers["X-Total-Count"] == "1"
        assert (await client.get(SUBS, headers=other)).json() == []
        assert (await client.delete(location, headers=other)).status_code == 404
        assert (await client.delete(location, headers=operator)).status_code == 204
        assert (await client.get(location, headers=operator)).status_code == 404


# --- end to end --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_notifier(settings: Settings) -> AsyncIterator[Notifier]:
    notifier = Notifier(settings)
    task = asyncio.create_task(notifier.run())
    try:
        await asyncio.wait_for(notifier.ready.wait(), 20)
        yield notifier
    finally:
        notifier.stopping = True
        notifier.wake.set()
        await asyncio.wait_for(task, 10)
        await notifier.stop()


async def _sensor(settings: Settings, offset: int = 0) -> asyncpg.Record:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetchrow(
            "SELECT se.id, se.operator_id, se.space_id FROM sensors se JOIN spaces sp ON sp.id = se.space_id "
            "WHERE se.space_id IS NOT NULL AND NOT sp.no_parking ORDER BY se.id OFFSET $1 LIMIT 1", offset)
    finally:
        await conn.close()


def _event(occupied: bool, at: datetime | None = None) -> dict[str, Any]:
    return {"occupied": occupied, "observed_at": (at or datetime.now(UTC)).isoformat()}


async def test_mqtt_event_reaches_the_receiver(fresh_db: Any, mqtt_url: str, tmp_path: Path) -> None:
    settings: Settings = await fresh_db(notify_allow="127.0.0.1")
    sensor = await _sensor(settings)
    operator = await make_committed_key(settings, "operator", sensor["operator_id"])
    receiver = await Receiver().start()
    ingest = Ingest(settings, mqtt_url, tmp_path / "ingest.log").start()
    try:
        async with app_client(settings) as client, running_notifier(settings):
            spot = f"urn:ngsi-ld:ParkingSpot:{sensor['space_id']}"
            r = await client.post(SUBS, headers=operator, json=subscription(
                receiver.url, entities=[{"type": "ParkingSpot", "id": spot}]))
            assert r.status_code == 201
            await poll(ingest.subscribed, timeout=30)
            topic = f"{settings.mqtt_topic_root}/{sensor['operator_id']}/sensors/{sensor['id']}/occupancy"
            publisher = Publisher(mqtt_url)
            for occupied in (True, False):
                publisher.publish([(topic, json.dumps(_event(occupied)).encode())])
                await poll(lambda o=occupied: any(  # type: ignore[misc]
                    e["status"] == ("occupied" if o else "free") for b in receiver.bodies() for e in b["data"]),
                    timeout=30)
            publisher.close()
            first = receiver.bodies()[0]
            assert first["type"] == "Notification"
            assert first["subscriptionId"] == r.headers["location"].rsplit("/", 1)[1]
            assert all(e["id"] == spot for b in receiver.bodies() for e in b["data"])
            await poll(lambda: _sent(client, operator, r.headers["location"]), timeout=10)
    finally:
        ingest.stop()
        await receiver.stop()


async def _sent(client: httpx.AsyncClient, key: dict[str, str], location: str) -> bool:
    got = (await client.get(location, headers=key)).json()["notification"]
    return got["timesSent"] >= 2 and "lastNotification" in got and got.get("status") == "ok"


async def _push(client: httpx.AsyncClient, key: dict[str, str], sensor: asyncpg.Record, occupied: bool,
                at: datetime | None = None) -> None:
    r = await client.post(f"/v1/operators/{sensor['operator_id']}/sensors/{sensor['id']}/occupancy",
                          json=_event(occupied, at), headers=key)
    assert r.status_code == 202, r.text


async def test_q_throttling_expiry_and_a_dead_endpoint(fresh_db: Any) -> None:
    settings: Settings = await fresh_db(notify_allow="127.0.0.1", notify_attempts=3)
    sensor = await _sensor(settings)
    operator = await make_committed_key(settings, "operator", sensor["operator_id"])
    spot = f"urn:ngsi-ld:ParkingSpot:{sensor['space_id']}"
    receiver = await Receiver().start()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/notify"
    async with app_client(settings) as client, running_notifier(settings):
        only = [{"type": "ParkingSpot", "id": spot}]
        made = {}
        for name, body in {
            "free_only": subscription(receiver.url, entities=only, q='status=="free"'),
            "throttled": subscription(receiver.url, entities=only, throttling=3),
            "expiring": subscription(receiver.url, entities=only,
                                     expiresAt=(datetime.now(UTC) + timedelta(seconds=2)).isoformat()),
            "dead": subscription(dead, entities=only),
        }.items():
            r = await client.post(SUBS, json=body, headers=operator)
            assert r.status_code == 201, r.text
            made[name] = r.headers["location"].rsplit("/", 1)[1]
        start = datetime.now(UTC)
        for i in range(6):
            await _push(client, operator, sensor, occupied=i % 2 == 0, at=start + timedelta(seconds=i))
            await asyncio.sleep(0.3)  # spacing the events (the notifier is what is waited for, below)
        def by(name: str) -> list[Any]:
            return [b for b in receiver.bodies() if b["subscriptionId"] == made[name]]
        await poll(lambda: len(by("free_only")) >= 3, timeout=15)
        assert all(e["status"] == "free" for b in by("free_only") for e in b["data"])
        await poll(lambda: len(by("throttled")) >= 1, timeout=15)
        times = [t for t, _, b in receiver.received if b["subscriptionId"] == made["throttled"]]
        assert len(times) < 6  # merged, not one per change
        assert all(b - a >= 2.9 for a, b in zip(times, times[1:], strict=False))
        # expiry: past its expiresAt a subscription reads expired and gets nothing more
        await poll(lambda: _status(client, operator, made["expiring"], "expired"), timeout=15)
        count = len(by("expiring"))
        await _push(client, operator, sensor, occupied=True, at=start + timedelta(seconds=30))
        await poll(lambda: len(by("throttled")) >= 2, timeout=15)
        assert len(by("expiring")) == count
        # the dead endpoint: failures recorded with retries, while pushes kept being committed
        await poll(lambda: _failed(client, operator, made["dead"]), timeout=20)
    await receiver.stop()


async def _status(client: httpx.AsyncClient, key: dict[str, str], sub_id: str, status: str) -> bool:
    return bool((await client.get(f"{SUBS}/{sub_id}", headers=key)).json()["status"] == status)


async def _failed(client: httpx.AsyncClient, key: dict[str, str], sub_id: str) -> bool:
    got = (await client.get(f"{SUBS}/{sub_id}", headers=key)).json()["notification"]
    return got.get("timesFailed", 0) >= 3 and "lastFailure" in got and got.get("status") == "failed"
