"""The pure detection engine on hand-computed scenarios, and its order independence."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.enforcement.engine import ALWAYS, Event, Found, Rule, evaluate, stays, windows
from tests.enforcement.helpers import at

MO_SA = 0b0111111
MO_FR = 0b0011111
CURB = Rule(1, "time_limit", MO_SA, 8 * 60, 12 * 60, 120, "facility")  # 2 h, Mo-Sa 08-20
LOADING = Rule(2, "time_limit", 127, 7 * 60, 12 * 60, 30, "space")  # 30 min, Mo-Su 07-19
NIGHT_BAN = Rule(3, "no_parking", 127, 22 * 60, 8 * 60, None, "space")  # 22:00-06:00
MORNING_BAN = Rule(4, "no_parking", MO_FR, 7 * 60, 90, None, "facility")  # Mo-Fr 07:00-08:30
FRESH = timedelta(minutes=30)


def run(spans: list[tuple], rules: list[Rule], *, now=None, last_seen=None) -> list[tuple]:  # type: ignore[type-arg]
    """Evaluate stays given as (arrive, leave-or-None) and return (kind, since, start, end) tuples."""
    events = [e for a, b in spans for e in ([Event(a, True)] + ([Event(b, False)] if b else []))]
    now = now or at(6, 23, 59)
    result = evaluate(events, rules, now=now, last_seen=last_seen, stale_after=FRESH)
    return [(f.kind, f.stay_since, f.started_at, f.ended_at) for f in result.violations]


def test_overstay_inside_the_window() -> None:
    assert run([(at(0, 9), at(0, 12))], [CURB]) == [("overstay", at(0, 9), at(0, 11), at(0, 12))]


def test_no_violation_within_the_limit() -> None:
    assert run([(at(0, 9), at(0, 10, 59))], [CURB]) == []


def test_stay_starting_before_the_window_counts_from_the_window_start() -> None:
    # Parked at 07:00: the 2 h count starts at 08:00, so the overstay starts at 10:00, not 09:00.
    assert run([(at(0, 7), at(0, 11))], [CURB]) == [("overstay", at(0, 8), at(0, 10), at(0, 11))]


def test_window_ending_during_the_stay_ends_the_violation() -> None:
    # 17:00 + 2 h = 19:00; the limit stops at 20:00 although the car stays until 23:00.
    assert run([(at(0, 17), at(0, 23))], [CURB]) == [("overstay", at(0, 17), at(0, 19), at(0, 20))]
    # 18:30 + 2 h = 20:30 is after the window: no violation at all.
    assert run([(at(0, 18, 30), at(0, 23))], [CURB]) == []


def test_no_limit_on_days_outside_the_mask() -> None:
    assert run([(at(6, 9), at(6, 18))], [CURB]) == []  # Sunday


def test_stay_over_two_days_gets_one_violation_per_window() -> None:
    assert run([(at(0, 19), at(2, 11))], [CURB]) == [
        ("overstay", at(1, 8), at(1, 10), at(1, 20)),
        ("overstay", at(2, 8), at(2, 10), at(2, 11)),
    ]


def test_consecutive_stays_are_counted_separately() -> None:
    assert run([(at(0, 9), at(0, 10, 30)), (at(0, 10, 31), at(0, 12))], [CURB]) == []
    assert run([(at(0, 9), at(0, 10)), (at(0, 10, 5), at(0, 12, 30))], [CURB]) == [
        ("overstay", at(0, 10, 5), at(0, 12, 5), at(0, 12, 30))]


def test_no_parking_window_crossing_midnight_after_the_grace() -> None:
    assert run([(at(0, 21), at(1, 7))], [NIGHT_BAN]) == [
        ("no_parking", at(0, 22), at(0, 22, 5), at(1, 6))]


def test_no_parking_within_the_grace_is_no_violation() -> None:
    assert run([(at(0, 22), at(0, 22, 4))], [NIGHT_BAN]) == []


def test_morning_ban_and_time_limit_on_one_stay() -> None:
    assert run([(at(0, 7), at(0, 11))], [CURB, MORNING_BAN]) == [
        ("overstay", at(0, 8), at(0, 10), at(0, 11)),
        ("no_parking", at(0, 7), at(0, 7, 5), at(0, 8, 30)),
    ]


def test_space_limit_replaces_the_facility_limit() -> None:
    # The loading bay's 30 min apply until 19:00; the curb's 2 h (would give 19:00-20:00) do not.
    assert run([(at(0, 17), at(0, 20))], [CURB, LOADING]) == [
        ("overstay", at(0, 17), at(0, 17, 30), at(0, 19))]


def test_overlapping_no_parking_rules_make_one_violation() -> None:
    assert run([(at(0, 6, 50), at(0, 9))], [MORNING_BAN, ALWAYS]) == [
        ("no_parking", at(0, 6, 50), at(0, 6, 55), at(0, 9))]


def test_open_stay_is_open_while_the_sensor_is_fresh() -> None:
    now = at(0, 12)
    assert run([(at(0, 9), None)], [CURB], now=now, last_seen=at(0, 11, 50)) == [
        ("overstay", at(0, 9), at(0, 11), None)]


def test_silent_sensor_gives_no_violation() -> None:
    # Last heard 10:30, limit reached 11:00: whatever happened after is missing data.
    assert run([(at(0, 9), None)], [CURB], now=at(0, 14), last_seen=at(0, 10, 30)) == []


def test_sensor_going_silent_closes_the_violation_when_last_heard() -> None:
    assert run([(at(0, 9), None)], [CURB], now=at(0, 14), last_seen=at(0, 11, 45)) == [
        ("overstay", at(0, 9), at(0, 11), at(0, 11, 45))]


def test_next_check_is_when_the_limit_will_be_reached() -> None:
    result = evaluate([Event(at(0, 9), True)], [CURB], now=at(0, 9, 30), last_seen=at(0, 9, 29),
                      stale_after=timedelta(hours=3))
    assert result.violations == []
    assert result.next_check == at(0, 11)


def test_repeated_occupied_events_do_not_restart_the_stay() -> None:
    events = [Event(at(0, 9), True), Event(at(0, 10), True), Event(at(0, 12), False)]
    assert stays(events)[0].since == at(0, 9)
    assert [f.started_at for f in evaluate(events, [CURB], now=at(1, 0)).violations] == [at(0, 11)]


def test_windows_join_across_midnight_for_an_all_day_rule() -> None:
    day_and_night = Rule(9, "time_limit", 127, 0, 1440, 600, "space")
    # Sunday, Monday and Tuesday's windows touch: one window over the whole asked-for range.
    assert windows(day_and_night, at(0, 20), at(1, 8)) == [(at(-1, 0), at(2, 0))]
    # 10 h counted straight through midnight: 20:00 + 10 h = 06:00 next day.
    assert run([(at(0, 20), at(1, 8))], [day_and_night]) == [("overstay", at(0, 20), at(1, 6), at(1, 8))]


# --- order independence ---------------------------------------------------------------------

minutes = st.integers(min_value=0, max_value=3 * 24 * 60)
histories = st.lists(st.tuples(minutes, st.booleans()), min_size=1, max_size=25)


def _found_key(found: Found) -> tuple:  # type: ignore[type-arg]
    return found.kind, found.stay_since, found.started_at, found.ended_at, found.rule_id


@settings(max_examples=200, deadline=None)
@given(histories, st.randoms(use_true_random=False), st.integers(min_value=0, max_value=3))
def test_same_result_whatever_order_and_repetition_of_events(history, rnd, repeats) -> None:  # type: ignore[no-untyped-def]
    events = [Event(at(0, 0) + timedelta(minutes=m), occ) for m, occ in history]
    delivered = events + [rnd.choice(events) for _ in range(repeats)]
    rnd.shuffle(delivered)
    rules = [CURB, MORNING_BAN, NIGHT_BAN]
    now = at(3, 12)
    expected = evaluate(events, rules, now=now, last_seen=max(e.observed_at for e in events))
    got = evaluate(delivered, rules, now=now, last_seen=max(e.observed_at for e in events))
    assert sorted(map(_found_key, got.violations)) == sorted(map(_found_key, expected.violations))
    assert got.next_check == expected.next_check
