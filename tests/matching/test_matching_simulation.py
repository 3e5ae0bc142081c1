"""The agent-based simulation: deterministic per seed, and holds keep users conflict-free."""

from __future__ import annotations

import numpy as np
import pytest

from matching.sim import POLICIES, DemandSpec, SimConfig, make_demand, measure, run, synthetic_district
from matching.sim.agents import Car
from matching.sim.contention import contention
from matching.sim.world import places

DISTRICT = synthetic_district(400, seed=3)
SPEC = DemandSpec(horizon_s=3600, peak_at_s=1800, peak_sd_s=600)
CONFIG = SimConfig(max_search_s=900)


def _metrics(key: str, seed: int = 1):
    policy = POLICIES[key]()
    return measure(policy.name, [run(DISTRICT, make_demand(DISTRICT, SPEC, seed), policy, CONFIG, seed)], {})


def test_same_seed_same_demand() -> None:
    a, b = make_demand(DISTRICT, SPEC, 5), make_demand(DISTRICT, SPEC, 5)
    assert np.array_equal(a.user_t, b.user_t)
    assert np.array_equal(a.other_at, b.other_at)


def test_holds_keep_citypark_users_conflict_free_and_faster_than_cruising() -> None:
    cruising, guided = _metrics("cruise"), _metrics("guide")
    for key in ("greedy", "batch"):
        held = _metrics(key)
        assert held.user_conflicts == 0
        assert held.mean_ttp_s < cruising.mean_ttp_s
        assert held.success_rate >= cruising.success_rate
    assert guided.user_conflicts > 0  # the parking race that holds prevent


def test_batch_optimal_never_costs_more_than_greedy_on_the_same_batches() -> None:
    result = contention(DISTRICT, 1.0, range(3))
    assert result.drivers > 0
    assert result.optimal_cost_s <= result.greedy_cost_s + 1e-6
    assert result.alone_cost_s <= result.optimal_cost_s + 1e-6


def test_batches_of_one_make_batch_optimal_exactly_greedy() -> None:
    """Cut into batches of one driver, the optimum is each driver's cheapest space left: greedy."""
    one = contention(DISTRICT, 1.0, range(3), batch_size=1, spread=True)
    whole = contention(DISTRICT, 1.0, range(3), spread=True)
    assert one.drivers == whole.drivers > 0
    assert one.optimal_cost_s == pytest.approx(one.greedy_cost_s, rel=1e-12)
    assert one.alone_cost_s == pytest.approx(whole.alone_cost_s, rel=1e-12)  # the bound ignores the cut
    assert whole.optimal_cost_s < whole.greedy_cost_s


def test_places_are_destinations_near_parking_not_parking_bays() -> None:
    rng = np.random.default_rng(2)
    found = places(rng, DISTRICT.xy, 30, block_m=100.0)
    assert found.shape == (30, 2)
    nearest = np.min(np.hypot(*(DISTRICT.xy[None, :, :] - found[:, None, :]).transpose(2, 0, 1)), axis=1)
    assert (nearest <= 150.0).all()
    assert np.allclose(found % 100.0, 50.0)  # block centres: drawn over the district, not among the bays
    assert len({tuple(p) for p in found}) > 1


def test_give_ups_count_with_the_time_they_searched() -> None:
    world = run(DISTRICT, make_demand(DISTRICT, SPEC, 1), POLICIES["cruise"](), CONFIG, 1)[1]
    parked = Car(0, t0=100.0, x=0.0, y=0.0, dest=(0.0, 0.0), stay_s=60.0, phase="parked", parked_at=160.0, space=0)
    gave_up = Car(1, t0=100.0, x=0.0, y=0.0, dest=(0.0, 0.0), stay_s=60.0, phase="failed", gave_up_at=1000.0)
    m = measure("x", [([parked, gave_up], world)], {})
    assert m.mean_ttp_parked_s == 60.0
    assert m.mean_ttp_s == (60.0 + 900.0) / 2
    assert m.success_rate == 0.5
