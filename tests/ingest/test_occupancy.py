"""The shared write path: validation rules (pure) and write_batch against PostGIS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, InvalidInput, NotFound
from app.occupancy import messages as msg
from app.occupancy import service as occ
from app.occupancy import staleness
from app.occupancy.messages import Count, Directory, FacilityInfo, Occupancy, Rejected, SensorInfo
from tests.conftest import poll

ROOT = "parking"
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def directory() -> Directory:
    d = Directory()
    d.sensors["bay-000001"] = SensorInfo("tiedong-city", "zqgc-lot-001", None)
    d.facilities["zqdxj-garage"] = FacilityInfo("zhanqian-underground", 420, True)
    d.facilities["cqgc-lot"] = FacilityInfo("zhanqian-underground", 240, False)
    return d


def check(topic: str, body: object) -> msg.Event:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    message = msg.parse_message(f"{ROOT}/{topic}", payload, root=ROOT)
    return msg.validate(message, directory=directory(), now=NOW, max_clock_skew_s=300)


def test_a_good_occupancy_message_becomes_an_event_in_utc() -> None:
    event = check("tiedong-city/sensors/bay-000001/occupancy",
                  {"occupied": True, "observed_at": "2026-11-29T16:00:00+08:00", "seq": 42, "battery_v": 3.6})
    assert event == Occupancy("bay-000001", "zqgc-lot-001", True, NOW, 42, 3.6)


def test_a_good_count_and_heartbeat() -> None:
    count = check("zhanqian-underground/facilities/zqdxj-garage/count",
                  {"free": 37, "total": 420, "observed_at": "2026-11-29T08:00:00Z"})
    assert count == Count("zqdxj-garage", 37, NOW, 420)
    beat = check("tiedong-city/sensors/bay-000001/heartbeat",
                 {"observed_at": "2026-11-29T08:00:00Z", "rssi_dbm": -97})
    assert isinstance(beat, msg.Heartbeat)
    assert (beat.space_id, beat.rssi_dbm, beat.battery_v) == ("zqgc-lot-001", -97.0, None)


T = "2026-11-29T08:00:00Z"


@pytest.mark.parametrize(("topic", "body", "reason"), [
    ("tiedong-city/sensors/bay-000001/occupancy", b"{not json", "bad_json"),
    ("tiedong-city/sensors/bay-000001/occupancy", b"[1, 2]", "bad_json"),
    ("tiedong-city/sensors/bay-000001/occupancy", b"\xff\xfe", "bad_json"),
    ("tiedong-city/sensors/bay-000001/occupancy", b" " * 5000, "payload_too_large"),
    ("tiedong-city/sensors/bay-000001/smell", {"observed_at": T}, "bad_topic"),
    ("tiedong-city/sensors/bay-000001", {"observed_at": T}, "bad_topic"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": "yes", "observed_at": T}, "invalid_field"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": 1, "observed_at": T}, "invalid_field"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True}, "invalid_field"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": 5}, "invalid_field"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": "yesterday"},
     "bad_timestamp"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": "2026-11-29T08:00:00"},
     "bad_timestamp"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": "2026-11-29T09:00:00Z"},
     "timestamp_in_future"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": "1999-12-31T23:00:00Z"},
     "timestamp_before_2000"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": T, "seq": -1},
     "invalid_field"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": T, "seq": "7"},
     "invalid_field"),
    ("tiedong-city/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": T, "battery_v": "x"},
     "invalid_field"),
    ("tiedong-city/sensors/mag-999999/occupancy", {"occupied": True, "observed_at": T}, "unknown_sensor"),
    ("shared-parking/sensors/bay-000001/occupancy", {"occupied": True, "observed_at": T}, "wrong_operator"),
    ("zhanqian-underground/facilities/zqdxj-garage/count", {"free": -1, "observed_at": T}, "free_negative"),
    ("zhanqian-underground/facilities/zqdxj-garage/count", {"free": 421, "observed_at": T},
     "free_above_capacity"),
    ("zhanqian-underground/facilities/zqdxj-garage/count", {"free": 1.5, "observed_at": T}, "invalid_field"),
    ("zhanqian-underground/facilities/zqdxj-garage/count", {"free": 50, "total": 40, "observed_at": T},
     "free_above_total"),
    ("zhanqian-underground/facilities/nowhere/count", {"free": 1, "observed_at": T}, "unknown_facility"),
    ("tiedong-city/facilities/zqdxj-garage/count", {"free": 1, "observed_at": T}, "wrong_operator"),
    ("zhanqian-underground/facilities/cqgc-lot/count", {"free": 1, "observed_at": T}, "not_counted"),
])
def test_bad_messages_are_rejected_with_a_reason(topic: str, body: object, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        check(topic, body)
    assert caught.value.reason == reason
    assert caught.value.stored_reason.startswith(reason)


def test_rejections_map_to_http_errors() -> None:
    assert isinstance(Rejected("unknown_sensor", "x").as_domain_error(), NotFound)
    assert isinstance(Rejected("wrong_operator", "x").as_domain_error(), Forbidden)
    error = Rejected("free_negative", "x").as_domain_error()
    assert isinstance(error, InvalidInput)
    assert error.kind == "free_negative"


def test_status_is_unknown_when_silent_or_never_reported() -> None:
    fresh, old = NOW - timedelta(seconds=10), NOW - timedelta(hours=2)
    assert staleness.space_status(False, fresh, now=NOW, stale_after_s=1800) == "free"
    assert staleness.space_status(True, fresh, now=NOW, stale_after_s=1800) == "occupied"
    assert staleness.space_status(False, old, now=NOW, stale_after_s=1800) == "unknown"
    assert staleness.space_status(None, fresh, now=NOW, stale_after_s=1800) == "unknown"


def test_notify_chunks_stay_under_the_postgres_limit() -> None:
    ids = [f"s{i}" for i in range(2000)] + [f"城市停车-{i:06d}" for i in range(2000)]
    chunks = occ._notify_chunks(ids)
    assert len(chunks) > 1
    assert all(len(c.encode()) <= occ.NOTIFY_MAX_BYTES for c in chunks)
    assert [i for c in chunks for i in json.loads(c)] == ids


# --- write_batch against the seeded database (rolled back) ------------------------------


BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


def ev(minutes: float, occupied: bool, seq: int | None = None, space: str = "zqgc-lot-001",
       sensor: str = "bay-000001") -> Occupancy:
    return Occupancy(sensor, space, occupied, at(minutes), seq)


async def state(conn: object, space: str = "zqgc-lot-001") -> tuple[object, ...]:
    row = await conn.fetchrow(  # type: ignore[attr-defined]
        "SELECT occupied, since, observed_at, seq FROM space_state WHERE space_id = $1", space)
    return tuple(row)


async def test_write_batch_is_idempotent_and_newest_wins(db: AsyncSession) -> None:
    conn = await occ.driver_connection(db)
    events = [ev(0, False, 1), ev(10, True, 2), ev(12, True, 3)]
    first = await occ.write_batch(conn, events)
    again = await occ.write_batch(conn, list(reversed(events)))
    assert (first.history_inserted, again.history_inserted) == (3, 0)
    assert first.changed_spaces == ["zqgc-lot-001"]
    assert again.changed_spaces == []
    assert await state(conn) == (True, at(10), at(12), 3)
    stale = await occ.write_batch(conn, [ev(5, False, 9)])  # late event: history only
    assert stale.history_inserted == 1
    assert (await state(conn))[0] is True
    n = await conn.fetchval("SELECT count(*) FROM occupancy_events WHERE sensor_id = 'bay-000001'")
    assert n == 4


async def test_since_follows_late_events_inside_the_spell(db: AsyncSession) -> None:
    conn = await occ.driver_connection(db)
    await occ.write_batch(conn, [ev(0, False), ev(20, True), ev(30, True)])
    assert (await state(conn))[1] == at(20)
    await occ.write_batch(conn, [ev(15, True)])  # the car was there earlier than we knew
    assert (await state(conn))[1] == at(15)
    await occ.write_batch(conn, [ev(25, False)])  # it left in between: the spell began at 30
    assert (await state(conn))[1:3] == (at(30), at(30))


async def test_heartbeats_counts_and_rejections(db: AsyncSession) -> None:
    conn = await occ.driver_connection(db)
    beat = msg.Heartbeat("bay-000001", "zqgc-lot-001", at(50), 3.1, -90.0)
    count = Count("zqdxj-garage", 37, at(40), 420)
    rejection = occ.Rejection("parking/x", b"bad\x00payload" + b"x" * 5000, "bad_json: nope")
    result = await occ.write_batch(conn, [beat, count, Count("zqdxj-garage", 30, at(30))],
                                   rejections=[rejection])
    assert result.counts_inserted == 2
    sensor = await conn.fetchrow("SELECT last_seen, battery_v, rssi_dbm FROM sensors WHERE id = 'bay-000001'")
    assert tuple(sensor) == (at(50), 3.1, -90.0)
    assert await conn.fetchval("SELECT last_seen FROM space_state WHERE space_id = 'zqgc-lot-001'") == at(50)
    fc = await conn.fetchrow("SELECT free, total, observed_at FROM facility_counts WHERE facility_id = 'zqdxj-garage'")
    assert tuple(fc) == (37, 420, at(40))
    stored = await conn.fetchrow("SELECT payload, reason FROM rejected_messages WHERE topic = 'parking/x'")
    assert stored["reason"] == "bad_json: nope"
    assert "\x00" not in stored["payload"]
    assert len(stored["payload"]) <= occ.STORED_PAYLOAD_CHARS + 10


async def test_notify_carries_changed_space_ids_after_commit(fresh_db: Any) -> None:
    settings = await fresh_db()
    listener = await asyncpg.connect(settings.asyncpg_dsn)
    got: list[str] = []
    await listener.add_listener("space_state", lambda *args: got.append(args[3]))
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        async with conn.transaction():
            await occ.write_batch(conn, [ev(0, True, space="zqgc-lot-002", sensor="bay-000002"),
                                         ev(0, True, space="zqgc-lot-003", sensor="bay-000003")])
            await conn.execute("SELECT 1")
            assert got == []  # not before the commit
        await poll(lambda: got, timeout=5)
        async with conn.transaction():  # a re-delivery changes nothing and notifies nothing
            await occ.write_batch(conn, [ev(0, True, space="zqgc-lot-002", sensor="bay-000002")])
        await conn.execute("SELECT pg_notify('space_state', '[\"probe\"]')")
        await poll(lambda: len(got) == 2, timeout=5)
    finally:
        await conn.close()
        await listener.close()
    assert [json.loads(g) for g in got] == [["zqgc-lot-002", "zqgc-lot-003"], ["probe"]]


async def test_push_writes_or_raises_domain_errors(db: AsyncSession, db_settings: object) -> None:
    body = {"occupied": True, "observed_at": at(60).isoformat()}
    event = await occ.push_occupancy(db, settings=db_settings, operator_id="tiedong-city",  # type: ignore[arg-type]
                                     sensor_id="bay-000001", body=body)
    assert isinstance(event, Occupancy)
    conn = await occ.driver_connection(db)
    assert await conn.fetchval(
        "SELECT source FROM occupancy_events WHERE sensor_id = 'bay-000001' AND observed_at = $1", at(60)) == "http"
    with pytest.raises(Forbidden):
        await occ.push_occupancy(db, settings=db_settings, operator_id="shared-parking",  # type: ignore[arg-type]
                                 sensor_id="bay-000001", body=body)
    with pytest.raises(NotFound):
        await occ.push_count(db, settings=db_settings, operator_id="shared-parking",  # type: ignore[arg-type]
                             facility_id="nope", body={"free": 1, "observed_at": at(1).isoformat()})
    with pytest.raises(InvalidInput):
        await occ.push_count(db, settings=db_settings, operator_id="shared-parking",  # type: ignore[arg-type]
                             facility_id="lss-counted-lot", body={"free": 999, "observed_at": at(1).isoformat()})
