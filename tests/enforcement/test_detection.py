"""Detection against the database: the demo district's rules, late and repeated events, the sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.enforcement import engine as rules_engine
from app.enforcement import violations as violations_service
from tests.enforcement.helpers import (
    CURB_SPACE,
    LOADING_SPACE,
    MORNING_BAN_SPACE,
    NO_PARKING_SPACE,
    add_events,
    at,
    clear_space,
    detect,
    stored,
)


def spans(rows: list[dict]) -> list[tuple]:  # type: ignore[type-arg]
    return [(r["kind"], r["stay_since"], r["started_at"], r["ended_at"]) for r in rows]


async def test_overstay_on_a_demo_curb_is_stored_with_its_rule_and_place(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    await add_events(db, CURB_SPACE, [(at(0, 9), True), (at(0, 12), False)])
    result = await detect(db, db_settings, CURB_SPACE, now=at(0, 13))
    rows = await stored(db, CURB_SPACE)
    assert result.violations == 1
    assert spans(rows) == [("overstay", at(0, 9), at(0, 11), at(0, 12))]
    assert rows[0]["facility_id"] == "s219-03"
    assert rows[0]["limit_minutes"] == 120
    rule = await db.scalar(text("SELECT max_stay_minutes FROM parking_rules WHERE id = :r"),
                           {"r": rows[0]["rule_id"]})
    assert rule == 120


async def test_loading_bay_and_no_parking_spaces_of_the_demo(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    await add_events(db, LOADING_SPACE, [(at(0, 17), True), (at(0, 20), False)])
    await add_events(db, NO_PARKING_SPACE, [(at(6, 3), True), (at(6, 3, 20), False)])
    await add_events(db, MORNING_BAN_SPACE, [(at(1, 7), True), (at(1, 8, 0), False)])
    for space in (LOADING_SPACE, NO_PARKING_SPACE, MORNING_BAN_SPACE):
        await detect(db, db_settings, space, now=at(6, 23))
    assert spans(await stored(db, LOADING_SPACE)) == [("overstay", at(0, 17), at(0, 17, 30), at(0, 19))]
    assert spans(await stored(db, NO_PARKING_SPACE)) == [("no_parking", at(6, 3), at(6, 3, 5), at(6, 3, 20))]
    assert spans(await stored(db, MORNING_BAN_SPACE)) == [("no_parking", at(1, 7), at(1, 7, 5), at(1, 8))]


async def test_redelivered_events_and_reruns_never_duplicate(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    events = [(at(0, 9), True), (at(0, 12), False)]
    await add_events(db, CURB_SPACE, events)
    await detect(db, db_settings, CURB_SPACE, now=at(0, 13))
    first = await stored(db, CURB_SPACE)
    await add_events(db, CURB_SPACE, events)  # delivered again
    await detect(db, db_settings, CURB_SPACE, now=at(0, 14))
    await detect(db, db_settings, CURB_SPACE, now=at(0, 14), since=at(0, 11))
    assert await stored(db, CURB_SPACE) == first


async def test_late_free_event_splits_the_stay_and_removes_the_violation(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    await add_events(db, CURB_SPACE, [(at(0, 9), True), (at(0, 12), False)])
    await detect(db, db_settings, CURB_SPACE, now=at(0, 13))
    assert len(await stored(db, CURB_SPACE)) == 1
    # Arriving late: the car left at 10:00 and another came at 10:30 (a stay of 1.5 h each).
    await add_events(db, CURB_SPACE, [(at(0, 10), False), (at(0, 10, 30), True)])
    await detect(db, db_settings, CURB_SPACE, now=at(0, 13), since=at(0, 10))
    assert await stored(db, CURB_SPACE) == []


async def test_open_violation_closes_when_the_car_leaves(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    await add_events(db, CURB_SPACE, [(at(0, 9), True), (at(0, 11, 50), True)])
    await detect(db, db_settings, CURB_SPACE, now=at(0, 12))
    [open_row] = await stored(db, CURB_SPACE)
    assert open_row["ended_at"] is None
    await add_events(db, CURB_SPACE, [(at(0, 12, 10), False)])
    await detect(db, db_settings, CURB_SPACE, now=at(0, 12, 15), since=at(0, 12, 10))
    [closed] = await stored(db, CURB_SPACE)
    assert (closed["id"], closed["ended_at"]) == (open_row["id"], at(0, 12, 10))


async def test_stale_sensor_gives_no_violation(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    await add_events(db, CURB_SPACE, [(at(0, 9), True)])  # and then silence
    await detect(db, db_settings, CURB_SPACE, now=at(0, 15))
    assert await stored(db, CURB_SPACE) == []


async def test_the_sweep_opens_and_closes_violations_as_the_clock_runs(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    settings = db_settings.model_copy(update={"stale_after_s": 86400})  # heartbeats not simulated
    sweep = violations_service.Sweep(lookback=timedelta(seconds=10))
    await sweep.run_pass(db, now=at(0, 9), settings=settings)
    await add_events(db, CURB_SPACE, [(at(0, 9, 0) + timedelta(seconds=30), True)])
    await sweep.run_pass(db, now=at(0, 9, 1), settings=settings)
    assert await stored(db, CURB_SPACE) == []
    limit = at(0, 11) + timedelta(seconds=30)
    assert sweep.due[CURB_SPACE] == limit  # it knows when to look again
    # No new event: the clock alone opens the violation, then the window's end closes it.
    await sweep.run_pass(db, now=limit + timedelta(seconds=1), settings=settings)
    assert [(r["started_at"], r["ended_at"]) for r in await stored(db, CURB_SPACE)] == [(limit, None)]
    assert sweep.due[CURB_SPACE] == at(0, 20)
    await sweep.run_pass(db, now=at(0, 20, 1), settings=settings)
    assert [(r["started_at"], r["ended_at"]) for r in await stored(db, CURB_SPACE)] == [(limit, at(0, 20))]


async def test_sweep_picks_up_events_committed_after_its_cursor(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    sweep = violations_service.Sweep(lookback=timedelta(seconds=10))
    now = datetime.now(UTC)
    await sweep.run_pass(db, now=now, settings=db_settings)
    await add_events(db, LOADING_SPACE, [(at(0, 17), True), (at(0, 20), False)])
    result = await sweep.run_pass(db, now=now + timedelta(seconds=1), settings=db_settings)
    assert result.spaces == 1
    assert spans(await stored(db, LOADING_SPACE)) == [("overstay", at(0, 17), at(0, 17, 30), at(0, 19))]


# --- the same violations whatever order the events arrive in --------------------------------

event_lists = st.lists(
    st.tuples(st.integers(min_value=0, max_value=2 * 24 * 60 // 15), st.booleans()),
    min_size=1, max_size=14, unique_by=lambda e: e[0])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_lists, order=st.randoms(use_true_random=False), batches=st.integers(1, 4))
async def test_detection_is_the_same_whatever_order_events_arrive_in(  # type: ignore[no-untyped-def]
    db, db_settings, events, order, batches,
) -> None:
    """Deliver a history in random batches and order, detecting after each; compare with all at once."""
    await clear_space(db, MORNING_BAN_SPACE)
    history = [(at(0, 6) + timedelta(minutes=15 * m), occ) for m, occ in events]
    now = at(2, 12)
    shuffled = list(history)
    order.shuffle(shuffled)
    for k in range(batches):
        chunk = shuffled[k::batches]
        if chunk:
            await add_events(db, MORNING_BAN_SPACE, chunk + chunk[:1])  # one re-delivery too
            await detect(db, db_settings, MORNING_BAN_SPACE, now=now, since=min(t for t, _ in chunk))
    rules = (await violations_service.load_rules(db, space_ids=[MORNING_BAN_SPACE]))[MORNING_BAN_SPACE]
    expected = rules_engine.evaluate(
        [rules_engine.Event(t, o) for t, o in history], rules, now=now,
        last_seen=max(t for t, _ in history), stale_after=timedelta(seconds=db_settings.stale_after_s),
        grace=timedelta(seconds=db_settings.no_parking_grace_s))
    assert sorted(spans(await stored(db, MORNING_BAN_SPACE))) == sorted(
        (f.kind, f.stay_since, f.started_at, f.ended_at) for f in expected.violations)


async def test_the_sweep_applies_rule_changes_to_current_stays(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    settings = db_settings.model_copy(update={"stale_after_s": 86400})
    sweep = violations_service.Sweep()
    await add_events(db, "td-hospital-lot-020", [(at(0, 23), True)])  # the lot's limit is 07-22
    await sweep.run_pass(db, now=at(1, 0), settings=settings)
    assert await stored(db, "td-hospital-lot-020") == []
    rule_id = await db.scalar(text(
        "INSERT INTO parking_rules (space_id, kind, days, day_mask, start_time, end_time) "
        "VALUES ('td-hospital-lot-020', 'no_parking', 'Mo-Su', 127, '00:00', '00:00') RETURNING id"))
    await sweep.run_pass(db, now=at(1, 0, 1), settings=settings)
    rows = await stored(db, "td-hospital-lot-020")
    assert [(r["kind"], r["rule_id"], r["ended_at"]) for r in rows] == [("no_parking", rule_id, None)]
    await db.execute(text("DELETE FROM parking_rules WHERE id = :r"), {"r": rule_id})
    await sweep.run_pass(db, now=at(1, 0, 2), settings=settings)
    assert await stored(db, "td-hospital-lot-020") == []
