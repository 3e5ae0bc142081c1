"""Gate passages of counted lots: counts follow entries and exits, authoritative counts reset
them, voids undo, plate hashes link stays, retention clears them, nothing clear-text is kept."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from app.passages import messages, service
from tests.conftest import app_client, make_committed_key

OP, LOT, CAPACITY = "shared-parking", "lss-counted-lot", 160
_CLOCK: dict[str, datetime] = {}
PLATE, PLATE_WRITTEN_OTHERWISE = "辽C·12345", "辽c 12345"


@pytest.fixture(autouse=True)
def _now() -> None:
    """Each test's own T0, 20 minutes ago: counts stay fresh (30 min) however long the suite
    ran before this test (a T0 taken at import went stale in a 13-minute run)."""
    _CLOCK["t0"] = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)


def t0() -> datetime:
    return _CLOCK["t0"]


def earlier() -> datetime:
    return t0() - timedelta(hours=3)


def at(minutes: float, base: datetime | None = None) -> str:
    return ((base or t0()) + timedelta(minutes=minutes)).isoformat()


async def post(client: Any, key: dict[str, str], body: Any, lot: str = LOT, op: str = OP) -> Any:
    url = f"/v1/operators/{op}/facilities/{lot}/passages"
    if isinstance(body, bytes):
        return await client.post(url, content=body, headers={**key, "Content-Type": "application/json"})
    return await client.post(url, json=body, headers=key)


async def count(client: Any, key: dict[str, str], free: int, minutes: float) -> None:
    r = await client.post(f"/v1/operators/{OP}/facilities/{LOT}/count", headers=key,
                          json={"free": free, "observed_at": at(minutes)})
    assert r.status_code == 202, r.text


async def free(client: Any) -> int:
    r = await client.get(f"/v1/facilities/{LOT}")
    assert r.status_code == 200
    return int(r.json()["free"])


async def rows(db: Any, sql: str, **params: Any) -> list[Any]:
    return list((await db.execute(text(sql), params)).mappings())


async def test_counts_follow_passages_and_the_newest_count_wins(client: Any, make_key: Any) -> None:
    key = await make_key("operator", OP)
    await count(client, key, 100, 0)
    batch = [{"direction": "in", "observed_at": at(1), "passage_id": "g1-1"},
             {"direction": "in", "observed_at": at(2), "passage_id": "g1-2"},
             {"direction": "in", "observed_at": at(3), "passage_id": "g1-3"},
             {"direction": "out", "observed_at": at(4), "passage_id": "g1-4"}]
    r = await post(client, key, batch)
    assert r.status_code == 202
    assert r.json() == {"accepted": 4, "duplicates": 0, "voided": 0, "rejected": []}
    assert await free(client) == 98
    again = await post(client, key, batch)  # re-delivered: counted once
    assert again.json()["duplicates"] == 4
    assert await free(client) == 98
    await count(client, key, 50, 2.5)  # a late count: the passages before it are in it
    assert await free(client) == 50  # in at 3 (−1), out at 4 (+1)
    await post(client, key, {"direction": "out", "observed_at": at(2.7), "passage_id": "g1-5"})
    assert await free(client) == 51
    await count(client, key, 120, 10)
    assert await free(client) == 120


async def test_voids_and_corrections_undo_passages(client: Any, make_key: Any) -> None:
    key = await make_key("operator", OP)
    await count(client, key, 80, 0)
    await post(client, key, [{"direction": "in", "observed_at": at(1), "passage_id": "v-1"},
                             {"direction": "in", "observed_at": at(2), "passage_id": "v-2"}])
    assert await free(client) == 78
    r = await post(client, key, {"void_of": "v-1", "observed_at": at(5), "passage_id": "v-void"})
    assert r.json()["voided"] == 1
    assert await free(client) == 79
    # v-2 was an exit really (数据纠正): the correction voids it and counts as an exit
    await post(client, key, {"direction": "out", "void_of": "v-2", "observed_at": at(2), "passage_id": "v-2b"})
    assert await free(client) == 81
    # a void that arrives before its passage still voids it
    await post(client, key, {"void_of": "v-3", "observed_at": at(6), "passage_id": "v-void-3"})
    await post(client, key, {"direction": "in", "observed_at": at(3), "passage_id": "v-3"})
    assert await free(client) == 81


async def test_plate_hashes_link_exits_to_entries(client: Any, make_key: Any, db: Any) -> None:
    key = await make_key("operator", OP)
    await post(client, key, [{"direction": "in", "observed_at": at(0, earlier()), "passage_id": "p-in", "plate": PLATE},
                             {"direction": "out", "observed_at": at(95, earlier()), "passage_id": "p-out",
                              "plate": PLATE_WRITTEN_OTHERWISE},
                             {"direction": "out", "observed_at": at(30, earlier()), "passage_id": "q-out",
                              "plate": "辽A00001"}])
    got = {r["passage_id"]: r for r in await rows(
        db, "SELECT passage_id, entry_id, stay_s, flags, plate_hash, id FROM passages WHERE facility_id = :f", f=LOT)}
    assert got["p-out"]["stay_s"] == 95 * 60
    assert got["p-out"]["entry_id"] == got["p-in"]["id"]
    assert got["p-in"]["plate_hash"] == messages.plate_hash("辽C12345", "citypark-development-plate-key")
    assert got["q-out"]["flags"] == ["exit_without_entry"]  # kept and flagged
    await post(client, key, {"direction": "in", "observed_at": at(10, earlier()), "passage_id": "q-in",
                             "plate": "辽A00001"})
    late = (await rows(db, "SELECT stay_s, flags FROM passages WHERE passage_id = 'q-out'"))[0]
    assert (late["stay_s"], late["flags"]) == (20 * 60, [])
    conn = (await (await db.connection()).get_raw_connection()).driver_connection
    listed = await service.stays(conn, facility_ids=[LOT], since=earlier(), until=t0())
    assert [(s.stay_s, s.left_at - s.entered_at) for s in listed] == [
        (20 * 60, timedelta(minutes=20)), (95 * 60, timedelta(minutes=95))]


async def test_going_out_of_range_is_flagged_not_clamped(client: Any, make_key: Any, db: Any) -> None:
    key = await make_key("operator", OP)
    await count(client, key, CAPACITY, 0)
    await post(client, key, {"direction": "out", "observed_at": at(1), "passage_id": "r-1"})
    row = (await rows(db, "SELECT free_after, flags FROM passages WHERE passage_id = 'r-1'"))[0]
    assert (row["free_after"], row["flags"]) == (CAPACITY + 1, ["free_above_capacity"])
    assert await free(client) == CAPACITY  # what readers see stays within 0..capacity
    await count(client, key, 0, 2)
    await post(client, key, {"direction": "in", "observed_at": at(3), "passage_id": "r-2"})
    row = (await rows(db, "SELECT free_after, flags FROM passages WHERE passage_id = 'r-2'"))[0]
    assert (row["free_after"], row["flags"]) == (-1, ["free_below_zero"])


async def test_retention_clears_old_plate_hashes(client: Any, make_key: Any, db: Any) -> None:
    key = await make_key("operator", OP)
    old = datetime.now(UTC) - timedelta(days=40)
    await post(client, key, [
        {"direction": "in", "observed_at": old.isoformat(), "passage_id": "old-in", "plate": "辽C99999"},
        {"direction": "out", "observed_at": (old + timedelta(hours=2)).isoformat(), "passage_id": "old-out",
         "plate": "辽C99999"},
        {"direction": "in", "observed_at": at(0), "passage_id": "new-in", "plate": "辽C99999"}])
    conn = (await (await db.connection()).get_raw_connection()).driver_connection
    assert await service.purge_plates(conn, retention_days=30) == 2
    got = {r["passage_id"]: r for r in await rows(db, "SELECT passage_id, plate_hash, stay_s FROM passages")}
    assert got["old-in"]["plate_hash"] is None
    assert got["old-out"]["plate_hash"] is None
    assert got["old-out"]["stay_s"] == 7200  # the stay outlives the hash
    assert got["new-in"]["plate_hash"] is not None


async def test_rejections(client: Any, make_key: Any, db: Any) -> None:
    key = await make_key("operator", OP)
    bad = await post(client, key, {"direction": "sideways", "observed_at": at(0), "plate": "辽C55555"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_field"
    mixed = await post(client, key, [{"direction": "in", "observed_at": at(0)}, {"direction": "in"}])
    assert mixed.status_code == 202
    assert mixed.json()["accepted"] == 1
    assert [r["index"] for r in mixed.json()["rejected"]] == [1]
    assert (await post(client, key, {"direction": "in", "observed_at": at(0)}, lot="nope")).status_code == 404
    other = await post(client, key, {"direction": "in", "observed_at": at(0)}, lot="zqdxj-garage")
    assert other.status_code == 403
    sensed = await post(client, key, {"direction": "in", "observed_at": at(0)}, lot="sf-office-lot")
    assert sensed.status_code == 422
    assert sensed.json()["error"] == "not_counted"
    assert (await post(client, key, b"{oops")).status_code == 422
    stored = await rows(db, "SELECT payload, reason FROM rejected_messages WHERE source = 'http'")
    assert len(stored) == 6
    assert all("55555" not in r["payload"] for r in stored)


async def test_no_plate_in_clear_anywhere_in_the_database(fresh_db: Any, mqtt_url: str) -> None:
    settings = await fresh_db()
    key = await make_committed_key(settings, "operator", OP)
    plates = ["辽C·88888", "京A-77777"]
    async with app_client(settings) as client:
        ok = await post(client, key, [{"direction": "in", "observed_at": at(0), "plate": plates[0]},
                                      {"direction": "out", "observed_at": at(9), "plate": plates[0]},
                                      {"direction": "in", "observed_at": at(1), "plate": plates[1], "lane": "B"}])
        assert ok.json()["accepted"] == 3
        bad = await post(client, key, {"direction": "up", "observed_at": at(2), "plate": plates[1]})
        assert bad.status_code == 422
        assert (await post(client, key, [{"plate": plates[1], "kennzeichen": "京A77777"}])).status_code == 202
    dump = await asyncio.to_thread(subprocess.run, ["pg_dump", "--data-only", settings.asyncpg_dsn],
                                   capture_output=True, check=True)
    text_dump = dump.stdout.decode("utf-8", "replace")
    assert "lss-counted-lot" in text_dump
    assert "exit_without_entry" not in text_dump
    for needle in ("88888", "77777", "辽C", "京A"):
        assert needle not in text_dump, needle
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM passages WHERE stay_s = 540") == 1
    finally:
        await conn.close()
