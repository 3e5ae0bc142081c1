"""Overstays in a gate-counted lot come from its passage stays (plate-hash-linked entry and exit):
a stay past the lot's time limit is a violation, a car still inside past it an active one, short
stays and voided entries none; re-runs never duplicate, and the API lists them without a space."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.enforcement.violations import Sweep

OP, LOT = "shared-parking", "lss-counted-lot"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now() -> None:
    """Each test's own NOW: one taken at import is minutes old by the time a long suite gets here."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


def passage(pid: str, direction: str | None, minutes_ago: float, plate: str | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {"passage_id": pid, "observed_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
                            **extra}
    if direction:
        body["direction"] = direction
    if plate:
        body["plate"] = plate
    return body


async def test_lot_overstays_from_passage_stays(client: Any, make_key: Any, db: AsyncSession,
                                                db_settings: Settings) -> None:
    await db.execute(text(
        "INSERT INTO parking_rules (facility_id, kind, max_stay_minutes, days, day_mask, start_time, end_time) "
        "VALUES (:lot, 'time_limit', 60, 'Mo-Su', 127, '00:00', '00:00')"), {"lot": LOT})
    key = await make_key("operator", OP)
    batch = [passage("a-in", "in", 180, "辽A·11111"), passage("a-out", "out", 30, "辽A·11111"),  # 150 min
             passage("b-in", "in", 40, "辽A·22222"), passage("b-out", "out", 10, "辽A·22222"),  # 30 min
             passage("c-in", "in", 120, "辽A·33333"),  # still inside after 2 h
             passage("d-in", "in", 300, "辽A·44444"), passage("d-out", "out", 100, "辽A·44444"),
             passage("d-void", None, 90, void_of="d-in"),  # the entry was a misread: no stay
             passage("e-in", "in", 200)]  # no plate: no stay can be known
    r = await client.post(f"/v1/operators/{OP}/facilities/{LOT}/passages", json=batch, headers=key)
    assert r.status_code == 202, r.text
    await db.execute(text("UPDATE facility_counts SET last_seen = now() WHERE facility_id = :lot"), {"lot": LOT})
    sweep = Sweep()
    for _ in range(2):  # a second pass finds the same, no duplicates
        await sweep.run_pass(db, now=NOW, settings=db_settings)
    rows = (await db.execute(text(
        "SELECT p.passage_id, v.space_id, v.stay_since, v.started_at, v.ended_at, v.limit_minutes "
        "FROM violations v JOIN passages p ON p.id = v.entry_passage_id ORDER BY p.passage_id"))).mappings().all()
    assert [r["passage_id"] for r in rows] == ["a-in", "c-in"]
    a, c = rows
    assert a["space_id"] is None
    assert a["started_at"] == NOW - timedelta(minutes=120)  # entry + 60 min
    assert a["ended_at"] == NOW - timedelta(minutes=30)  # the exit
    assert c["started_at"] == NOW - timedelta(minutes=60)
    assert c["ended_at"] is None  # still inside: active
    assert a["limit_minutes"] == c["limit_minutes"] == 60
    enforcement = await make_key("enforcement")
    listed = (await client.get("/v1/enforcement/violations", params={"active": "true"}, headers=enforcement)).json()
    mine = [v for v in listed if v["facility_id"] == LOT]
    assert len(mine) == 1
    assert mine[0]["space_id"] is None
    assert mine[0]["kind"] == "overstay"
    # the car leaves: the violation ends at its exit on the next pass
    r = await client.post(f"/v1/operators/{OP}/facilities/{LOT}/passages",
                          json=passage("c-out", "out", 5, "辽A·33333"), headers=key)
    assert r.status_code == 202
    await sweep.run_pass(db, now=NOW, settings=db_settings)
    ended = (await db.execute(text(
        "SELECT v.ended_at FROM violations v JOIN passages p ON p.id = v.entry_passage_id "
        "WHERE p.passage_id = 'c-in'"))).scalar_one()
    assert ended == NOW - timedelta(minutes=5)
