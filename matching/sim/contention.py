"""Greedy vs batch-optimal on identical batches under contention.

Drivers (200–800 m from their destinations) ask while free spaces are scarce: ``demand_ratio``
drivers per free space. Destinations are either around the district's hotspots (a peak at a
few places) or spread over the district (demand meeting supply everywhere). They are solved as
one batch, or in batches of ``batch_size`` in the order they asked (as the service's
``CITYPARK_BATCH_MAX`` cuts them). Both methods get the same requests and the same nearest free
candidates per driver (:func:`matching.candidate_depth` of the batch, as the service fetches
them), and repeat on what is left until every driver is served, so the totals compare like
with like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from matching.cost import CostModel
from matching.model import Driver, Space
from matching.sim.world import District, Floats
from matching.solve import Problem, build_problem, candidate_depth, greedy_picks, optimal_picks

Solver = Callable[[Problem], dict[int, int]]


@dataclass(frozen=True)
class ContentionResult:
    """Totals over the batches of one contention level."""

    demand_ratio: float
    spread: bool
    batches: int
    drivers: int
    greedy_cost_s: float
    optimal_cost_s: float
    alone_cost_s: float  # sum of each driver's cheapest candidate, as if alone

    @property
    def excess_ratio(self) -> float:
        """Batch-optimal / greedy cost above what each driver would pay alone."""
        return (self.optimal_cost_s - self.alone_cost_s) / (self.greedy_cost_s - self.alone_cost_s)

    @property
    def ratio(self) -> float:
        """Batch-optimal total cost / greedy total cost."""
        return self.optimal_cost_s / self.greedy_cost_s


def contention(district: District, demand_ratio: float, seeds: range, free_share: float = 0.05,
               k: int | None = None, spread: bool = False, batch_size: int | None = None) -> ContentionResult:
    """Solve the same requests greedily and optimally; ``free_share`` of the spaces are free;
    destinations around hotspots, or uniform over the district when ``spread``; ``k``
    candidates per driver (default: :func:`matching.candidate_depth` of each batch)."""
    totals = np.zeros(3)
    drivers = 0
    for seed in seeds:
        free, dest, pos = _batch(district, demand_ratio, free_share, seed, spread)
        size = batch_size or len(dest)
        for n, solver in enumerate((greedy_picks, optimal_picks, _alone)):
            left = free.copy()
            for first in range(0, len(dest), size):
                part = slice(first, first + size)
                fresh = free.copy() if solver is _alone else left  # the bound ignores the others
                totals[n] += _serve_all(district, fresh, dest[part], pos[part], k, solver)
        drivers += len(dest)
    return ContentionResult(demand_ratio, spread, len(seeds), drivers, *map(float, totals))


def _alone(problem: Problem) -> dict[int, int]:
    """Everyone takes its cheapest candidate, shared or not (a lower bound, not a solution)."""
    order = np.lexsort((problem.costs, problem.rows))
    first = np.unique(problem.rows[order], return_index=True)[1]
    return {int(problem.rows[order[f]]): int(order[f]) for f in first}


def _batch(district: District, ratio: float, free_share: float, seed: int,
           spread: bool) -> tuple[np.ndarray, Floats, Floats]:
    rng = np.random.default_rng(seed)
    free = rng.random(len(district.xy)) < free_share
    count = max(1, int(round(ratio * free.sum())))
    hot = district.hotspots[rng.integers(0, len(district.hotspots), count)]
    dest = rng.uniform(*district.bounds, (count, 2)) if spread else hot + rng.normal(0, 150, (count, 2))
    angle, reach = rng.uniform(0, 2 * np.pi, count), rng.uniform(200, 800, count)
    pos = dest + np.column_stack([np.cos(angle), np.sin(angle)]) * reach[:, None]
    return free, dest, pos


def _serve_all(district: District, free: np.ndarray, dest: Floats, pos: Floats, k: int | None,
               solver: Solver) -> float:
    """Rounds of ``solver`` over the nearest free spaces until all are served (``free`` is
    updated in place); total cost."""
    todo, total, model = list(range(len(dest))), 0.0, CostModel()
    while todo and free.any():
        idx = np.flatnonzero(free)
        depth = candidate_depth(len(todo)) if k is None else k
        _, near = cKDTree(district.xy[idx]).query(dest[todo], k=min(depth, len(idx)))
        near = idx[np.asarray(near).reshape(len(todo), -1)]
        drivers = [Driver(str(i), *pos[i], *dest[i]) for i in todo]
        cands = [[Space(str(j), *district.xy[j]) for j in row] for row in near]
        problem = build_problem(drivers, cands, model)
        picks = solver(problem)
        for e in picks.values():
            free[int(problem.spaces[problem.cols[e]].id)] = False
            total += float(problem.costs[e])
        todo = [i for n, i in enumerate(todo) if n not in picks]
    return total
