"""``citypark evaluate --pricing``: what the pricing rule is expected to do, in the simulation.

Each round is one pricing period: the agent simulation runs the same demand (per seed) with
the blocks' current fees, drivers respond to the fees (``matching.sim.pricing.reprice``:
constant elasticity, redistribution to the cheapest block within a walk), and the management
rule (``app.management.pricing.recommend``, the one the endpoint applies) moves every block's
fee one step toward the target band from the occupancy it saw. Reported per round: the share
of block-time inside the target band, the share at or above 85 % (full), and the mean
time-to-park of blind cruising and of citypark's greedy guidance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from app.management import pricing
from matching.sim.engine import SimConfig, run
from matching.sim.metrics import measure
from matching.sim.policies import POLICIES
from matching.sim.pricing import Blocks, Sampler, blocks_of, reprice
from matching.sim.world import DemandSpec, District, make_demand

POLICY_KEYS = ("cruise", "greedy")


@dataclass(frozen=True)
class Round:
    index: int
    raised: int
    lowered: int
    in_band: float
    full: float
    ttp_s: dict[str, float]


def evaluate_pricing(district: District, *, seeds: range, rounds: int, elasticity: float, rule: pricing.Rule,
                     base_fee: float, config: SimConfig | None = None) -> list[Round]:
    """Round 0 is today's flat fee; rounds 1… follow the rule."""
    config = config or SimConfig()
    blocks = blocks_of(district)
    prices = np.full(len(blocks.centres), base_fee)
    out, raised, lowered = [], 0, 0
    for index in range(rounds + 1):
        samplers, ttp = _simulate(district, blocks, prices, seeds, config, elasticity, repriced=index > 0)
        band = float(np.mean([s.in_band(rule.low, rule.high) for s in samplers]))
        full = float(np.mean([s.in_band(0.85, 1.0) for s in samplers]))
        out.append(Round(index, raised, lowered, band, full, ttp))
        mean = np.mean([s.mean() for s in samplers], axis=0)
        prices, raised, lowered = _step(prices, mean, rule)
    return out


def _simulate(district: District, blocks: Blocks, prices: np.ndarray, seeds: range, config: SimConfig,
              elasticity: float, *, repriced: bool) -> tuple[list[Sampler], dict[str, float]]:
    samplers, ttp = [], {}
    for key in POLICY_KEYS:
        runs = []
        for seed in seeds:
            demand = make_demand(district, DemandSpec(), seed)
            if repriced:
                demand = reprice(demand, blocks, prices, elasticity=elasticity, seed=seed)
            sampler = Sampler(blocks)
            runs.append(run(district, demand, POLICIES[key](), config, seed, observe=sampler))
            if key == "cruise":
                samplers.append(sampler)
        ttp[key] = measure(key, runs, {}).mean_ttp_s
    return samplers, ttp


def _step(prices: np.ndarray, occupancy: np.ndarray, rule: pricing.Rule) -> tuple[np.ndarray, int, int]:
    now = datetime.now(UTC)
    new = prices.copy()
    for b, (fee, occ) in enumerate(zip(prices, occupancy, strict=True)):
        rec = pricing.recommend(occupancy=float(occ), current_fee=float(fee), last_change=None, as_of=now, rule=rule)
        new[b] = rec.recommended_fee if rec.recommended_fee is not None else fee
    return new, int(np.sum(new > prices)), int(np.sum(new < prices))


def report(name: str, rounds: list[Round], rule: pricing.Rule, elasticity: float, base_fee: float) -> str:
    lines = [f"\n== pricing on {name}: target {rule.low:.0%}–{rule.high:.0%}, step {rule.step:g}, floor "
             f"{rule.floor:g}, cap {rule.cap:g}, flat fee {base_fee:g} at first, elasticity {elasticity:g} ==",
             f"{'round':>5} {'raised':>6} {'lowered':>7} {'in band':>8} {'full':>6} "
             + " ".join(f"{'ttp ' + k:>12}" for k in POLICY_KEYS)]
    for r in rounds:
        lines.append(f"{r.index:5d} {r.raised:6d} {r.lowered:7d} {r.in_band:8.1%} {r.full:6.1%} "
                     + " ".join(f"{r.ttp_s[k]:11.0f}s" for k in POLICY_KEYS))
    first, last = rounds[0], rounds[-1]
    lines.append(f"  before → after {len(rounds) - 1} periods: block-time in band {first.in_band:.1%} → "
                 f"{last.in_band:.1%}, full {first.full:.1%} → {last.full:.1%}, time-to-park (cruising) "
                 f"{first.ttp_s['cruise']:.0f} s → {last.ttp_s['cruise']:.0f} s")
    return "\n".join(lines)
