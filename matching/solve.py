"""Greedy (the baseline) and batch-optimal assignment of drivers to candidate spaces.

Each driver brings its own candidate list (e.g. its k nearest free spaces); the batch is the
bipartite graph of all those lists. The optimal solution first serves as many drivers as
possible, then minimises the total cost; it is solved exactly by scipy's sparse
minimum-weight full bipartite matching (LAPJVsp), not by hand-written Hungarian code.

How many candidates each driver needs is :func:`candidate_depth`: a batch of n drivers needs
each driver's n cheapest spaces for its optimum over the candidates to be the optimum over all
free spaces, so the depth grows with the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from matching.cost import CostModel
from matching.model import Driver, Space

BASE_CANDIDATES = 20
MAX_CANDIDATES = 128


def candidate_depth(drivers: int, base: int = BASE_CANDIDATES, cap: int = MAX_CANDIDATES) -> int:
    """Candidates to fetch per driver for a batch of ``drivers``: ``max(base, drivers)``, at most
    ``cap`` (``base`` wins over ``cap``).

    Exchange argument: in a batch of n drivers, the other n - 1 drivers use at most n - 1 of a
    driver's n cheapest spaces, so a driver given anything worse could move to a free one of them
    and the total would not grow (and an unserved driver could be served). Some optimum over all
    free spaces therefore uses only each driver's n cheapest, and solving over those is exact;
    with fewer, a contended batch is solved over an arbitrarily truncated graph. Up to ``cap``
    drivers, then, the batch decision is exact (when candidates are ranked by cost; ranked by
    distance, as nearest-first queries give them, it is exact for the walk and close for the
    rest).
    """
    if drivers < 0:
        raise ValueError("drivers must be >= 0")
    return max(base, min(drivers, cap))


@dataclass(frozen=True)
class Assignment:
    """Decisions for a batch: the space given to each driver (``None`` = none fits)."""

    space_of: dict[str, str | None]
    cost_of: dict[str, float] = field(default_factory=dict)

    @property
    def total_cost(self) -> float:
        """Sum of the costs of the assigned drivers."""
        return float(sum(self.cost_of.values()))

    @property
    def assigned(self) -> int:
        """How many drivers got a space."""
        return sum(s is not None for s in self.space_of.values())


@dataclass(frozen=True)
class Problem:
    """The batch as a sparse graph: finite-cost edges ``(rows[k], cols[k], costs[k])``."""

    drivers: Sequence[Driver]
    spaces: list[Space]
    rows: NDArray[np.int_]
    cols: NDArray[np.int_]
    costs: NDArray[np.float64]

    def decide(self, picks: dict[int, int]) -> Assignment:
        """Turn ``{driver index: edge index}`` into an :class:`Assignment`."""
        space_of = {d.id: None for d in self.drivers} | {
            self.drivers[i].id: self.spaces[self.cols[k]].id for i, k in picks.items()
        }
        cost_of = {self.drivers[i].id: float(self.costs[k]) for i, k in picks.items()}
        return Assignment(space_of, cost_of)


def build_problem(
    drivers: Sequence[Driver], candidates: Sequence[Sequence[Space]], model: CostModel
) -> Problem:
    """Union the candidate lists (by space id) and price every driver–candidate edge."""
    index: dict[str, int] = {}
    spaces: list[Space] = []
    rows: list[int] = []
    cols: list[int] = []
    for i, cands in enumerate(candidates):
        for space in {s.id: s for s in cands}.values():  # a space listed twice is one edge
            if space.id not in index:
                index[space.id] = len(spaces)
                spaces.append(space)
            rows.append(i)
            cols.append(index[space.id])
    r, c = np.asarray(rows, dtype=np.int_), np.asarray(cols, dtype=np.int_)
    costs = model.edge_costs(drivers, spaces, r, c)
    keep = np.isfinite(costs)
    return Problem(drivers, spaces, r[keep], c[keep], costs[keep])


def assign_greedy(
    drivers: Sequence[Driver],
    candidates: Sequence[Sequence[Space]],
    model: CostModel | None = None,
) -> Assignment:
    """First come, first served: each driver in turn takes its cheapest remaining candidate."""
    problem = build_problem(drivers, candidates, model or CostModel())
    return problem.decide(greedy_picks(problem))


def greedy_picks(problem: Problem) -> dict[int, int]:
    """Greedy on a built problem: ``{driver index: edge index}``."""
    left = np.array([s.capacity for s in problem.spaces])
    order = np.lexsort((problem.costs, problem.rows))
    picks: dict[int, int] = {}
    for k in order:
        i, j = int(problem.rows[k]), int(problem.cols[k])
        if i not in picks and left[j] > 0:
            picks[i] = int(k)
            left[j] -= 1
    return picks


def assign_optimal(
    drivers: Sequence[Driver],
    candidates: Sequence[Sequence[Space]],
    model: CostModel | None = None,
) -> Assignment:
    """Serve the most drivers, then minimise the batch's total cost — exactly."""
    problem = build_problem(drivers, candidates, model or CostModel())
    return problem.decide(optimal_picks(problem))


def optimal_picks(problem: Problem, required: int = 0) -> dict[int, int]:
    """Exact solution on a built problem; drivers ``< required`` must be served (no dummy).

    Each space becomes ``capacity`` slot columns; every optional driver also gets a private
    dummy column priced above any possible saving, so serving one more driver always wins.
    """
    n = len(problem.drivers)
    if n == 0 or (len(problem.costs) == 0 and required == 0):
        return {}
    n_slots, edge_of_slot, r, c, w = _slot_edges(problem)
    big = float(np.sum(_row_max(problem) + 1.0)) + 1.0
    dummies = np.arange(required, n)
    rows = np.concatenate([r, dummies])
    cols = np.concatenate([c, n_slots + np.arange(len(dummies))])
    weights = np.concatenate([w + 1.0, np.full(len(dummies), big)])  # +1: zeros are not edges
    graph = sp.csr_array((weights, (rows, cols)), shape=(n, n_slots + len(dummies)))
    matched_rows, matched_cols = min_weight_full_bipartite_matching(graph)
    return {
        int(i): edge_of_slot[int(i), int(j)]
        for i, j in zip(matched_rows, matched_cols, strict=True)
        if j < n_slots
    }


def _row_max(problem: Problem) -> NDArray[np.float64]:
    out = np.zeros(len(problem.drivers))
    np.maximum.at(out, problem.rows, problem.costs)
    return out


Ints = NDArray[np.int_]
Slots = tuple[int, dict[tuple[int, int], int], Ints, Ints, NDArray[np.float64]]


def _slot_edges(problem: Problem) -> Slots:
    """Expand spaces of capacity k into k slot columns (never more than the batch size).

    Returns the slot count, ``{(driver, slot): edge}`` and the slot edges' rows, columns, costs.
    """
    caps = np.minimum([s.capacity for s in problem.spaces], len(problem.drivers)).astype(int)
    first = np.concatenate([[0], np.cumsum(caps)[:-1]]).astype(int)
    per_edge = caps[problem.cols]
    edge = np.repeat(np.arange(len(problem.cols)), per_edge)
    within = np.arange(len(edge)) - np.repeat(np.cumsum(per_edge) - per_edge, per_edge)
    slot = first[problem.cols[edge]] + within
    rows = problem.rows[edge]
    lookup = {(int(i), int(j)): int(k) for i, j, k in zip(rows, slot, edge, strict=True)}
    return int(caps.sum()), lookup, rows, slot, problem.costs[edge]
