"""Same identity, other payload (issue 18 item 8) and readings stamped ahead of the clock (item 9).

Against the real database (write_batch, rolled back) and end to end through `citypark ingest`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.occupancy import service as occ
from app.occupancy.messages import Heartbeat, Occupancy
from tests.conftest import poll
from tests.ingest.harness import Publisher, count_rows, sensors_of

SPACE, SENSOR = "zqgc-lot-001", "bay-000001"
R = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # the "receive clock" of these tests


def ev(at: datetime, occupied: bool, seq: int | None = None, battery_v: float | None = None) -> Occupancy:
    return Occupancy(SENSOR, SPACE, occupied, at, seq, battery_v)


async def state(conn: asyncpg.Connection) -> tuple[Any, ...]:
    row = await conn.fetchrow("SELECT occupied, since, observed_at, last_seen FROM space_state WHERE space_id = $1",
                              SPACE)
    return tuple(row)


async def conflicts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT topic, payload, reason FROM rejected_messages "
                            "WHERE reason LIKE 'conflicting_duplicate%' ORDER BY id")


async def history(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch(
        "SELECT observed_at, seq, occupied FROM occupancy_events WHERE sensor_id = $1 ORDER BY observed_at, seq",
        SENSOR)]


# --- item 8: a conflicting reading never vanishes ------------------------------------------


async def test_a_conflicting_duplicate_in_a_later_batch_is_rejected_with_its_reason(db: AsyncSession) -> None:
    conn = await occ.driver_connection(db)
    first = await occ.write_batch(conn, [ev(R, True)], received_at=R)
    again = await occ.write_batch(conn, [ev(R, True)], received_at=R + timedelta(seconds=5))  # redelivery
    other = await occ.write_batch(conn, [ev(R, False)], received_at=R + timedelta(seconds=9),
                                  origins={ev(R, False): ("parking/x/sensors/bay-000001/occupancy", b'{"o":0}')})
    assert (first.history_inserted, again.history_inserted, other.history_inserted) == (1, 0, 0)
    assert (first.conflicts, again.conflicts, other.conflicts) == (0, 0, 1)
    assert other.rejected == 1
    assert await history(conn) == [(R, None, True)]
    rows = await conflicts(conn)
    assert len(rows) == 1  # the identical redelivery is a plain duplicate, the other one is kept here
    assert rows[0]["topic"] == "parking/x/sensors/bay-000001/occupancy"
    assert rows[0]["payload"] == '{"o":0}'
    assert "occupied=false conflicts with the stored occupied=true" in rows[0]["reason"]
    assert (await state(conn))[0] is True  # the stored reading stands


async def test_a_conflicting_duplicate_inside_one_batch_is_rejected_too(db: AsyncSession) -> None:
    conn = await occ.driver_connection(db)
    result = await occ.write_batch(conn, [ev(R, True, 7), ev(R, True, 7), ev(R, False, 7),
                                          ev(R, True, 7, battery_v=3.1)], received_at=R)
    assert (result.history_inserted, result.conflicts) == (1, 2)
    rows = await conflicts(conn)
    assert [("occupied=false" in r["reason"], "earlier in the batch" in r["reason"]) for r in rows] == [
        (True, True), (False, True)]
    payload = json.loads(rows[0]["payload"])  # without origins the event itself is kept
    assert (payload["occupied"], payload["seq"]) == (False, 7)
    assert await history(conn) == [(R, 7, True)]


# --- item 9: a reading stamped ahead of the clock ------------------------------------------


async def test_a_future_stamp_does_not_hide_a_later_correct_reading(db: AsyncSession) -> None:
    conn = await occ.driver_connection(db)
    await occ.write_batch(conn, [ev(R - timedelta(minutes=5), False)], received_at=R - timedelta(minutes=5))
    ahead = ev(R + timedelta(seconds=290), False)  # inside the allowed skew (300 s)
    await occ.write_batch(conn, [ahead], received_at=R)
    assert (await state(conn))[2] == R  # ordered (and shown) as when it came, not as it claims
    correct = ev(R + timedelta(seconds=5), True)
    changed = await occ.write_batch(conn, [correct], received_at=R + timedelta(seconds=5))
    assert changed.changed_spaces == [SPACE]
    assert (await state(conn))[:3] == (True, R + timedelta(seconds=5), R + timedelta(seconds=5))
    # A redelivery of the early-stamped reading keeps the order of its first receipt.
    await occ.write_batch(conn, [ahead], received_at=R + timedelta(seconds=20))
    assert (await state(conn))[0] is True
    # Both readings are in history with the stamps the sensor sent.
    assert [h[0] for h in await history(conn)] == [R - timedelta(minutes=5), R + timedelta(seconds=5),
                                                    R + timedelta(seconds=290)]


async def test_future_heartbeats_do_not_keep_a_space_fresh_ahead_of_time(db: AsyncSession) -> None:
    conn = await occ.driver_connection(db)
    await occ.write_batch(conn, [ev(R, True), Heartbeat(SENSOR, SPACE, R + timedelta(seconds=250), 3.0)],
                          received_at=R + timedelta(seconds=10))
    assert (await state(conn))[3] == R + timedelta(seconds=10)
    sensor = await conn.fetchrow("SELECT last_seen, battery_v FROM sensors WHERE id = $1", SENSOR)
    assert tuple(sensor) == (R + timedelta(seconds=10), 3.0)


# --- end to end through the real broker and `citypark ingest` ------------------------------


async def test_end_to_end_conflict_and_future_stamp(fresh_db: Any, broker: Any, ingest_factory: Any) -> None:
    settings = await fresh_db()
    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    (ahead_sensor, conflicting) = await sensors_of(settings, 2)
    root = settings.mqtt_topic_root

    def topic(s: asyncpg.Record) -> str:
        return f"{root}/{s['operator_id']}/sensors/{s['id']}/occupancy"

    def body(occupied: bool, at: datetime) -> bytes:
        return json.dumps({"occupied": occupied, "observed_at": at.isoformat()}).encode()

    now = datetime.now(UTC).replace(microsecond=0)
    publisher = Publisher(broker.url)
    publisher.publish([  # same identity (no seq), opposite values
        (topic(conflicting), body(True, now - timedelta(seconds=30))),
        (topic(conflicting), body(False, now - timedelta(seconds=30))),
        (topic(ahead_sensor), body(False, now + timedelta(seconds=290))),  # 290 s ahead, free
    ])
    await poll(lambda: count_rows(settings, "SELECT count(*) FROM occupancy_events WHERE sensor_id = $1",
                                  ahead_sensor["id"]), timeout=20)
    publisher.publish([(topic(ahead_sensor), body(True, datetime.now(UTC)))])  # then a correct-time occupied
    publisher.close()
    await poll(lambda: count_rows(settings, "SELECT count(*) FROM space_state WHERE space_id = $1 AND occupied",
                                  ahead_sensor["space_id"]), timeout=20)
    await poll(lambda: count_rows(settings, "SELECT count(*) FROM rejected_messages "
                                  "WHERE reason LIKE 'conflicting_duplicate%'"), timeout=20)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        row = await conn.fetchrow("SELECT topic, payload FROM rejected_messages "
                                  "WHERE reason LIKE 'conflicting_duplicate%'")
        assert row["topic"] == topic(conflicting)
        assert json.loads(row["payload"])["occupied"] is False  # the second one, as it came
        assert await conn.fetchval("SELECT count(*) FROM occupancy_events WHERE sensor_id = $1",
                                   conflicting["id"]) == 1
    finally:
        await conn.close()
    assert ingest.stop() == 0


async def test_an_http_push_of_a_conflicting_reading_is_refused_409_and_recorded(
        client: Any, make_key: Any, db: AsyncSession) -> None:
    headers = await make_key("operator", "tiedong-city")
    url = "/v1/operators/tiedong-city/sensors/bay-000001/occupancy"
    at = (R - timedelta(minutes=3)).isoformat()
    assert (await client.post(url, json={"occupied": True, "observed_at": at}, headers=headers)).status_code == 202
    assert (await client.post(url, json={"occupied": True, "observed_at": at}, headers=headers)).status_code == 202
    refused = await client.post(url, json={"occupied": False, "observed_at": at}, headers=headers)
    assert refused.status_code == 409
    assert refused.json()["error"] == "conflicting_duplicate"
    conn = await occ.driver_connection(db)
    rows = await conflicts(conn)
    assert [(r["topic"].endswith("/sensors/bay-000001/occupancy"), json.loads(r["payload"])["occupied"])
            for r in rows] == [(True, False)]
