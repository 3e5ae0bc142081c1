"""The pure engine against brute force on small random instances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from matching import CostModel, Driver, Hold, Space, assign_greedy, assign_optimal, candidate_depth, reassign

MODEL = CostModel()
SEEDS = range(120)


def _instance(seed: int) -> tuple[list[Driver], list[list[Space]]]:
    rng = np.random.default_rng(seed)
    spaces = [
        Space(f"s{j}", *rng.uniform(0, 800, 2), accessible=bool(rng.random() < 0.3),
              capacity=int(rng.choice([1, 1, 1, 2])),
              available_minutes=float(rng.choice([np.inf, 30, 600])))
        for j in range(int(rng.integers(1, 6)))
    ]
    drivers = [
        Driver(f"d{i}", *rng.uniform(0, 800, 2), *rng.uniform(0, 800, 2),
               accessible=bool(rng.random() < 0.2), stay_minutes=float(rng.choice([30, 120])))
        for i in range(int(rng.integers(1, 6)))
    ]
    cands = [[s for s in spaces if rng.random() < 0.7] for _ in drivers]
    return drivers, cands


def _choices(drivers: list[Driver], cands: list[list[Space]]) -> list[list[Space | None]]:
    pairs = zip(drivers, cands, strict=True)
    return [[None, *(s for s in c if math.isfinite(MODEL.cost(d, s)))] for d, c in pairs]


def _feasible(picks: tuple[Space | None, ...]) -> bool:
    used: dict[str, int] = {}
    for s in picks:
        if s is not None:
            used[s.id] = used.get(s.id, 0) + 1
            if used[s.id] > s.capacity:
                return False
    return True


def _brute(drivers: list[Driver], cands: list[list[Space]]) -> tuple[int, float]:
    """Best (served, total cost) over every feasible assignment."""
    best = (0, 0.0)
    for picks in itertools.product(*_choices(drivers, cands)):
        if _feasible(picks):
            served = sum(p is not None for p in picks)
            cost = sum(MODEL.cost(d, p) for d, p in zip(drivers, picks, strict=True) if p)
            if served > best[0] or (served == best[0] and cost < best[1]):
                best = (served, cost)
    return best


def _check_valid(drivers: list[Driver], cands: list[list[Space]], result_space: dict) -> None:
    by_id = {s.id: s for c in cands for s in c}
    picks = tuple(by_id.get(result_space[d.id]) for d in drivers)
    assert _feasible(picks)
    for d, c, p in zip(drivers, cands, picks, strict=True):
        assert p is None or (p in c and math.isfinite(MODEL.cost(d, p)))


@pytest.mark.parametrize("seed", SEEDS)
def test_optimal_matches_brute_force(seed: int) -> None:
    drivers, cands = _instance(seed)
    result = assign_optimal(drivers, cands, MODEL)
    served, cost = _brute(drivers, cands)
    _check_valid(drivers, cands, result.space_of)
    assert result.assigned == served
    assert result.total_cost == pytest.approx(cost, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_greedy_is_valid_and_never_beats_optimal(seed: int) -> None:
    drivers, cands = _instance(seed)
    greedy, best = assign_greedy(drivers, cands, MODEL), assign_optimal(drivers, cands, MODEL)
    _check_valid(drivers, cands, greedy.space_of)
    assert greedy.assigned <= best.assigned
    if greedy.assigned == best.assigned:
        assert best.total_cost <= greedy.total_cost + 1e-6


def test_greedy_serves_in_arrival_order() -> None:
    near = Space("near", 0, 0)
    first, second = Driver("a", 500, 0), Driver("b", 10, 0)
    result = assign_greedy([first, second], [[near], [near]])
    assert result.space_of == {"a": "near", "b": None}


def test_optimal_prefers_serving_more_drivers_over_lower_cost() -> None:
    close, far = Space("close", 0, 0), Space("far", 3000, 0)
    a, b = Driver("a", 0, 0), Driver("b", 10, 0)
    result = assign_optimal([a, b], [[close, far], [close]])
    assert result.space_of == {"a": "far", "b": "close"}


@pytest.mark.parametrize("seed", range(60))
def test_each_drivers_batch_size_cheapest_spaces_keep_the_optimum(seed: int) -> None:
    """The exchange argument behind ``candidate_depth``: a batch of n drivers solved over each
    driver's n cheapest spaces serves as many, as cheaply, as over every space."""
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(2, 7))
    spaces = [Space(f"s{j}", *rng.normal(0, 150, 2), accessible=bool(rng.random() < 0.2))
              for j in range(int(rng.integers(n, 3 * n + 2)))]
    drivers = [Driver(f"d{i}", *rng.uniform(-800, 800, 2), *rng.normal(0, 100, 2),
                      accessible=bool(rng.random() < 0.2)) for i in range(n)]
    full = assign_optimal(drivers, [spaces] * n, MODEL)
    cheapest = [sorted(spaces, key=lambda s, d=d: MODEL.cost(d, s))[:n] for d in drivers]
    deep = assign_optimal(drivers, cheapest, MODEL)
    assert deep.assigned == full.assigned
    assert deep.total_cost == pytest.approx(full.total_cost, rel=1e-9, abs=1e-6)


def test_fewer_candidates_than_drivers_can_miss_the_optimum() -> None:
    """Two drivers, one nearest space: with one candidate each, the second is left out."""
    a, b, c = Space("a", 0, 0), Space("b", 60, 0), Space("c", -400, 0)
    drivers = [Driver("x", 0, 0, 5, 0), Driver("y", 0, 0, -5, 0)]
    by_cost = [sorted([a, b, c], key=lambda s, d=d: MODEL.cost(d, s)) for d in drivers]
    shallow = assign_optimal(drivers, [cands[:1] for cands in by_cost], MODEL)
    deep = assign_optimal(drivers, [cands[:candidate_depth(2, base=1)] for cands in by_cost], MODEL)
    assert shallow.assigned == 1
    assert deep.assigned == 2
    assert deep.space_of == {"x": "b", "y": "a"}


def test_candidate_depth_grows_with_the_batch_within_bounds() -> None:
    assert [candidate_depth(n) for n in (0, 1, 20, 21, 64, 10_000)] == [20, 20, 20, 21, 64, 128]
    assert candidate_depth(5, base=1, cap=3) == 3
    assert candidate_depth(5, base=10, cap=3) == 10
    with pytest.raises(ValueError, match="drivers"):
        candidate_depth(-1)


def test_counted_lot_serves_up_to_its_capacity() -> None:
    lot = Space("lot", 0, 0, capacity=2)
    drivers = [Driver(f"d{i}", i, 0) for i in range(3)]
    result = assign_optimal(drivers, [[lot]] * 3)
    assert sorted(filter(None, result.space_of.values())) == ["lot", "lot"]


def test_preferences_exclude_and_penalise() -> None:
    plain, accessible = Space("plain", 0, 0), Space("acc", 0, 0, accessible=True)
    needs, other = Driver("n", 0, 0, accessible=True), Driver("o", 0, 0)
    assert math.isinf(MODEL.cost(needs, plain))
    assert MODEL.cost(other, accessible) == MODEL.cost(other, plain) + MODEL.spare_accessible_s


def test_spaces_closing_soon_are_penalised_or_excluded() -> None:
    driver = Driver("d", 0, 0, stay_minutes=60)
    open_long, closing, gone = Space("a", 700, 0), Space("b", 700, 0, available_minutes=30), Space(
        "c", 700, 0, available_minutes=1
    )
    assert MODEL.cost(driver, closing) > MODEL.cost(driver, open_long)
    assert math.isinf(MODEL.cost(driver, gone))


def test_cost_without_destination_walks_back_to_the_driver() -> None:
    driver, space = Driver("d", 0, 0), Space("s", 130, 0)
    expected = 130 * MODEL.detour * (1 / MODEL.drive_speed_mps + 1 / MODEL.walk_speed_mps)
    assert MODEL.cost(driver, space) == pytest.approx(expected)


def _reassign_instance(seed: int) -> tuple[list[Hold], list[Driver], list[list[Space]]]:
    drivers, cands = _instance(seed + 1000)
    drivers, cands = drivers[:4], cands[:4]  # keeps the brute force fast
    rng = np.random.default_rng(seed)
    pool = [Space(f"h{i}", *rng.uniform(0, 800, 2)) for i in range(len(drivers))]
    n_hold = int(rng.integers(0, len(drivers) + 1))
    holds = [Hold(Driver(d.id, d.x, d.y, d.dest_x, d.dest_y), pool[i], tuple(cands[i]))
             for i, d in enumerate(drivers[:n_hold])]
    return holds, drivers[n_hold:], cands[n_hold:]


def _brute_reassign(holds: list[Hold], seekers: list[Driver], cands: list[list[Space]]) -> tuple:
    held = [h.space for h in holds]
    drivers = [h.driver for h in holds] + seekers
    lists = [[h.space, *h.candidates, *held] for h in holds] + [[*c, *held] for c in cands]
    best: tuple = (-1, 0.0)
    for picks in itertools.product(*_choices(drivers, lists)):
        if not _feasible(picks) or not _holders_ok(holds, picks):
            continue
        served = sum(p is not None for p in picks[len(holds):])
        cost = sum(MODEL.cost(d, p) for d, p in zip(drivers, picks, strict=True) if p)
        cost += sum(30.0 for h, p in zip(holds, picks, strict=False) if p.id != h.space.id)
        if served > best[0] or (served == best[0] and cost < best[1]):
            best = (served, cost)
    return best


def _holders_ok(holds: list[Hold], picks: tuple) -> bool:
    return all(
        p is not None and MODEL.cost(h.driver, p) <= MODEL.cost(h.driver, h.space) + 1e-9
        for h, p in zip(holds, picks, strict=False)
    )


@pytest.mark.parametrize("seed", range(80))
def test_reassign_is_monotone_and_optimal(seed: int) -> None:
    holds, seekers, cands = _reassign_instance(seed)
    result = reassign(holds, seekers, cands, MODEL)
    for h in holds:
        assert result.cost_of[h.driver.id] <= MODEL.cost(h.driver, h.space) + 1e-9
    moved = sum(30.0 for h in holds if result.space_of[h.driver.id] != h.space.id)
    served = sum(result.space_of[d.id] is not None for d in seekers)
    assert (served, pytest.approx(result.total_cost + moved, abs=1e-6)) == _brute_reassign(
        holds, seekers, cands
    )


def test_reassign_moves_a_holder_to_free_the_only_space_a_seeker_can_use() -> None:
    shared, better = Space("shared", 100, 0), Space("better", 5, 0)
    holder = Hold(Driver("h", 0, 0), shared, (better,))
    result = reassign([holder], [Driver("s", 100, 0)], [[]])
    assert result.space_of == {"h": "better", "s": "shared"}


def test_reassign_never_moves_a_holder_to_a_worse_space() -> None:
    mine, worse = Space("mine", 5, 0), Space("worse", 900, 0)
    holder = Hold(Driver("h", 0, 0), mine, (worse,))
    result = reassign([holder], [Driver("s", 5, 0)], [[worse]])
    assert result.space_of == {"h": "mine", "s": "worse"}


def test_reassign_without_swaps_moves_holders_only_to_their_own_candidates() -> None:
    a_space, b_space = Space("a", 0, 0), Space("b", 50, 0)
    holds = [Hold(Driver("ha", 50, 0), a_space), Hold(Driver("hb", 0, 0), b_space)]
    swapped = reassign(holds, [], [])
    kept = reassign(holds, [], [], swaps=False)
    assert swapped.space_of == {"ha": "b", "hb": "a"}
    assert kept.space_of == {"ha": "a", "hb": "b"}
