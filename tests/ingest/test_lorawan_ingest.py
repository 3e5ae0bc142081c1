"""Network-server uplinks end to end: a private broker, `citypark ingest`, the public API.

ChirpStack JSON (Bosch), ChirpStack protobuf (Nwave) and The Things Stack JSON (Netvox) each
move a demo curb segment's availability; bad uplinks are rejected with reasons; a re-delivered
uplink is stored once; a frame-counter reset (rejoin) neither hides nor duplicates events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from sensors.lorawan import frames
from tests.conftest import app_client, poll
from tests.ingest.harness import Broker, Publisher, count_rows

APP = "tiedong-parking"
SEGMENTS = {"s219-00": "chirpstack", "s219-01": "chirpstack-protobuf", "s219-02": "tts"}


async def devices(settings: Any, facility_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetch("SELECT s.id, s.dev_eui, s.sensor_model FROM sensors s JOIN spaces sp "
                                "ON sp.id = s.space_id WHERE sp.facility_id = $1 ORDER BY s.id", facility_id)
    finally:
        await conn.close()


def uplink(envelope: str, device: Any, kind: str, occupied: bool, f_cnt: int, at: datetime | None,
           **frame_kw: Any) -> tuple[str, bytes]:
    port, data = frames.frame(device["sensor_model"], kind, occupied, **frame_kw)
    eui = device["dev_eui"]
    if envelope == "tts":
        return (frames.tts_topic(APP, device["id"], "city"),
                frames.tts_json(APP, device["id"], eui, port, f_cnt, data, at))
    build = frames.chirpstack_protobuf if envelope == "chirpstack-protobuf" else frames.chirpstack_json
    return frames.chirpstack_topic(APP, eui), build(APP, eui, port, f_cnt, data, at)


async def free_of(client: Any, facility_id: str) -> Any:
    response = await client.get(f"/v1/facilities/{facility_id}")
    assert response.status_code == 200
    return response.json()


def equals(client: Any, facility_id: str, free: int) -> Callable[[], Any]:
    async def check() -> bool:
        return (await free_of(client, facility_id))["free"] == free
    return check


async def test_three_envelopes_move_availability_and_bad_uplinks_are_rejected(
        fresh_db: Any, broker: Any, ingest_factory: Any) -> None:
    settings = await fresh_db()
    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    now = datetime.now(UTC).replace(microsecond=0)
    fleets = {fid: await devices(settings, fid) for fid in SEGMENTS}
    assert {d["sensor_model"] for fleet in fleets.values() for d in fleet} == {
        "bosch-tps110", "nwave-nps310", "netvox-r719a"}
    first = [uplink(env, d, "status", False, 1, now - timedelta(minutes=2)) for fid, env in SEGMENTS.items()
             for d in fleets[fid]]
    publisher = Publisher(broker.url)
    publisher.publish(first + first[:5])  # five re-delivered
    async with app_client(settings) as client:
        for fid in SEGMENTS:
            await poll(equals(client, fid, 40), timeout=20)
        later = [uplink(env, d, "heartbeat", True, 2, now - timedelta(minutes=1), temperature_c=-4, battery_v=3.1)
                 for fid, env in SEGMENTS.items() for d in fleets[fid][:3]]
        publisher.publish(later + list(_bad_uplinks(fleets, now)))
        for fid in SEGMENTS:
            await poll(equals(client, fid, 37), timeout=20)
        detail = await free_of(client, "s219-00")
        health = detail["sensor_health"]
        assert (health["sensors"], health["lorawan"], health["reporting"]) == (40, 40, 40)
        assert health["temperature_c_mean"] == -4.0  # the Bosch heartbeats' temperature
        sensors = (await client.get("/v1/facilities/s219-02/sensors", params={"limit": 2})).json()
        assert sensors[0]["battery_v"] == 3.1
        assert sensors[0]["rssi_dbm"] == -97
    publisher.close()
    await poll(lambda: count_rows(settings, "SELECT count(*) >= 5 FROM rejected_messages"), timeout=20)
    assert await count_rows(settings, "SELECT count(*) FROM occupancy_events") == 120 + 9
    reasons = await _reasons(settings)
    assert reasons == ["bad_base64", "bad_protobuf", "short_frame", "unknown_device", "unknown_port"]
    assert ingest.alive()


def _bad_uplinks(fleets: dict[str, list[Any]], now: datetime) -> list[tuple[str, bytes]]:
    bosch, nwave = fleets["s219-00"][10], fleets["s219-01"][10]
    at = now - timedelta(seconds=30)
    return [
        (frames.chirpstack_topic(APP, "0011223344556677"), frames.chirpstack_json(APP, "0011223344556677", 1, 5,
                                                                                  b"\x01", at)),
        (frames.chirpstack_topic(APP, bosch["dev_eui"]), frames.chirpstack_json(APP, bosch["dev_eui"], 9, 5,
                                                                                b"\x01", at)),
        (frames.chirpstack_topic(APP, nwave["dev_eui"]), frames.chirpstack_json(APP, nwave["dev_eui"], 3, 5,
                                                                                b"\x01\x02", at)),
        (frames.chirpstack_topic(APP, bosch["dev_eui"]),
         frames.chirpstack_json(APP, bosch["dev_eui"], 1, 6, b"\x01", at).replace(b'"AQ=="', b'"A!Q=="')),
        (frames.chirpstack_topic(APP, nwave["dev_eui"]), b"\x0a\xff\xff"),
    ]


async def test_frame_counter_reset_and_uplinks_without_time(fresh_db: Any, broker: Any, ingest_factory: Any) -> None:
    settings = await fresh_db()
    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    bosch = (await devices(settings, "s219-00"))[0]
    marker_device = (await devices(settings, "s219-00"))[1]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    before = [uplink("chirpstack", bosch, "status", True, 100, t0), uplink("chirpstack", bosch, "status", False, 101,
                                                                           t0 + timedelta(minutes=1))]
    rejoined = uplink("chirpstack", bosch, "status", True, 0, t0 + timedelta(minutes=2))  # counter back to 0
    publisher = Publisher(broker.url)
    publisher.publish([*before, rejoined, rejoined, before[0]])
    sql = "SELECT count(*) FROM occupancy_events WHERE sensor_id = $1"
    at_least = "SELECT (count(*) >= $2)::int FROM occupancy_events WHERE sensor_id = $1"
    await poll(lambda: count_rows(settings, at_least, bosch["id"], 3), timeout=20)
    state = await _state(settings, bosch["id"])
    assert (state["occupied"], state["seq"], state["observed_at"]) == (True, 0, t0 + timedelta(minutes=2))
    assert await count_rows(settings, "SELECT count(*) FROM sensor_resets WHERE sensor_id = $1 "
                            "AND cause = 'fcnt_reset' AND fcnt = 0", bosch["id"]) == 1
    # No time in the envelope: timed by arrival; a copy in a later batch is still the same frame.
    untimed = uplink("chirpstack", bosch, "status", False, 1, None)
    for n, mark_cnt in ((1, 1), (2, 2)):
        publisher.publish([untimed, uplink("chirpstack", marker_device, "status", True, mark_cnt,
                                           t0 + timedelta(minutes=3 + n))])
        await poll(lambda cnt=mark_cnt: count_rows(settings, at_least, marker_device["id"], cnt), timeout=20)
    publisher.close()
    assert await count_rows(settings, sql, bosch["id"]) == 4
    assert (await _state(settings, bosch["id"]))["occupied"] is False
    assert ingest.alive()


async def _state(settings: Any, sensor_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetchrow("SELECT st.* FROM space_state st JOIN sensors s ON s.space_id = st.space_id "
                                   "WHERE s.id = $1", sensor_id)
    finally:
        await conn.close()


async def _reasons(settings: Any) -> list[str]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return sorted(r["reason"].split(":")[0] for r in await conn.fetch("SELECT reason FROM rejected_messages"))
    finally:
        await conn.close()


async def test_gate_passages_over_mqtt(fresh_db: Any, broker: Any, ingest_factory: Any) -> None:
    settings = await fresh_db()
    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    root, now = settings.mqtt_topic_root, datetime.now(UTC).replace(microsecond=0)
    topic = f"{root}/shared-parking/facilities/lss-counted-lot/passage"

    def passage(direction: str, minutes: int, pid: str, plate: str | None = None) -> tuple[str, bytes]:
        body = {"direction": direction, "observed_at": (now - timedelta(minutes=minutes)).isoformat(),
                "passage_id": pid, **({"plate": plate} if plate else {})}
        return topic, json.dumps(body).encode()

    count = (f"{root}/shared-parking/facilities/lss-counted-lot/count",
             json.dumps({"free": 100, "observed_at": (now - timedelta(minutes=10)).isoformat()}).encode())
    messages = [count, passage("in", 9, "m1", "辽C·24680"), passage("in", 8, "m2"), passage("in", 8, "m2"),
                passage("out", 2, "m3", "辽C24680"),
                (topic, b'{"direction": "in", "observed_at": "soon", "plate": "\\u8fbdC13579"}'),
                (f"{root}/shared-parking/facilities/zqdxj-garage/passage", passage("in", 1, "x")[1])]
    publisher = Publisher(broker.url)
    publisher.publish(messages)
    publisher.close()
    await poll(lambda: count_rows(settings, "SELECT count(*) >= 2 FROM rejected_messages"), timeout=20)
    await poll(lambda: count_rows(settings, "SELECT count(*) = 3 FROM passages"), timeout=20)
    assert await count_rows(settings, "SELECT free FROM facility_counts WHERE facility_id = 'lss-counted-lot'") == 99
    assert await count_rows(settings, "SELECT stay_s FROM passages WHERE passage_id = 'm3'") == 7 * 60
    assert sorted(await _reasons(settings)) == ["bad_timestamp", "wrong_operator"]
    assert await count_rows(settings, "SELECT count(*) FROM rejected_messages WHERE payload LIKE '%13579%'") == 0


async def test_network_servers_on_their_own_broker(fresh_db: Any, broker: Any, ingest_factory: Any) -> None:
    settings = await fresh_db()
    lorawan_broker = Broker().start()
    try:
        ingest = ingest_factory(settings, broker.url, extra_env={"CITYPARK_LORAWAN_MQTT_URL": lorawan_broker.url,
                                                                  "CITYPARK_LORAWAN_FORMATS": "tts"})
        await poll(lambda: ingest.log().count("subscribed: ") >= 2, timeout=20)
        netvox = (await devices(settings, "s219-02"))[0]
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        on_lorawan = Publisher(lorawan_broker.url)
        on_lorawan.publish([uplink("tts", netvox, "status", True, 3, at)])
        on_lorawan.close()
        sql = "SELECT count(*) FROM occupancy_events WHERE sensor_id = $1 AND source = 'tts'"
        await poll(lambda: count_rows(settings, sql, netvox["id"]), timeout=20)
        # ChirpStack is off and the sensors' broker carries no uplinks: only the JSON marker after it lands
        other = (await devices(settings, "s219-02"))[1]["id"]  # a LoRaWAN device may speak citypark JSON too
        marker = (f"{settings.mqtt_topic_root}/tiedong-city/sensors/{other}/occupancy",
                  json.dumps({"occupied": True, "observed_at": at.isoformat()}).encode())
        on_sensors = Publisher(broker.url)
        on_sensors.publish([uplink("chirpstack", netvox, "status", False, 4, at + timedelta(seconds=5)), marker])
        on_sensors.close()
        await poll(lambda: count_rows(settings, "SELECT count(*) FROM occupancy_events WHERE source = 'mqtt'"),
                   timeout=20)
        assert await count_rows(settings, "SELECT count(*) FROM occupancy_events") == 2
        assert ingest.stop() == 0
    finally:
        lorawan_broker.remove()
