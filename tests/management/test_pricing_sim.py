"""``citypark evaluate --pricing``: the price-elastic demand and the rounds of the rule."""

from __future__ import annotations

import numpy as np

from app.demo import pricing_eval
from app.management.pricing import Rule
from matching.sim.pricing import blocks_of, reprice
from matching.sim.world import Demand, District, synthetic_district


def _two_blocks(n: int) -> tuple[District, Demand]:
    xy = np.array([[50.0, 50.0], [250.0, 50.0]])  # block (0, 0) and block (1, 0) of 200 m
    district = District("two", xy, xy.copy())
    dest = np.tile([[60.0, 60.0]], (n, 1))
    empty = np.zeros(0)
    return district, Demand(np.zeros(2), np.zeros(n), dest.copy(), dest, np.full(n, 600.0), empty,
                            np.zeros((0, 2)), empty)


def test_drivers_move_to_a_cheaper_block_with_the_elasticity() -> None:
    district, demand = _two_blocks(20_000)
    blocks = blocks_of(district)
    own, other = blocks.keys[(0, 0)], blocks.keys[(1, 0)]
    prices = np.zeros(2)
    prices[own], prices[other] = 10.0, 5.0
    moved = reprice(demand, blocks, prices, elasticity=-0.4, seed=1)
    share = float(np.mean(blocks.of_points(moved.user_dest) == other))
    assert abs(share - (1 - 0.5 ** 0.4)) < 0.01
    same = reprice(demand, blocks, np.full(2, 5.0), elasticity=-0.4, seed=1)
    assert np.array_equal(same.user_dest, demand.user_dest)
    far = reprice(demand, blocks, prices, elasticity=-0.4, walk_m=100, seed=1)  # the cheap block is too far
    assert np.array_equal(far.user_dest, demand.user_dest)


def test_rounds_follow_the_rule() -> None:
    district = synthetic_district(400, seed=3)
    rule = Rule(step=0.5, floor=1, cap=15)
    rounds = pricing_eval.evaluate_pricing(district, seeds=range(1), rounds=2, elasticity=-0.4, rule=rule,
                                           base_fee=5.0)
    assert [r.index for r in rounds] == [0, 1, 2]
    assert (rounds[0].raised, rounds[0].lowered) == (0, 0)
    assert rounds[1].raised + rounds[1].lowered > 0  # a flat fee is never right everywhere
    for r in rounds:
        assert 0 <= r.in_band <= 1
        assert 0 <= r.full <= 1
        assert set(r.ttp_s) == {"cruise", "greedy"}
    assert "before → after 2 periods" in pricing_eval.report("x", rounds, rule, -0.4, 5.0)
