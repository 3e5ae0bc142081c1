"""Monotone re-assignment (Geng & Cassandras, 2013): re-solve without hurting holders.

When a held space is lost (someone else parked there), its driver becomes a seeker again.
Holders near it may be moved to make room, but only to a space that costs them no more than
the one they hold now; a move also costs ``switch_s`` so that nobody is shuffled for nothing.
Holders are always served (their own space remains feasible); seekers are served as many as
possible, then the total cost is minimised, exactly as in :func:`matching.assign_optimal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from matching.cost import CostModel
from matching.model import Driver, Hold, Space
from matching.solve import Assignment, Problem, build_problem, optimal_picks

EPS_S = 1e-9


def reassign(
    holds: Sequence[Hold],
    seekers: Sequence[Driver],
    candidates: Sequence[Sequence[Space]],
    model: CostModel | None = None,
    switch_s: float = 30.0,
    swaps: bool = True,
) -> Assignment:
    """Assign ``seekers`` (with their ``candidates``), letting holders move only for the better.

    Every held space is also a candidate for the seekers (it frees up if its holder moves),
    and, with ``swaps``, for the other holders too; without, holders move only to their own
    ``candidates`` (so the moves can be applied one by one under a no-double-hold constraint).
    The result covers holders and seekers; a holder's cost never exceeds its current cost.
    """
    model = model or CostModel()
    held = [h.space for h in holds]
    drivers = [h.driver for h in holds] + list(seekers)
    lists = [(h.space, *h.candidates, *(held if swaps else ())) for h in holds]
    lists += [(*cands, *held) for cands in candidates]
    problem = _monotone(build_problem(drivers, lists, model), holds, model, switch_s)
    picks = optimal_picks(problem, required=len(holds))
    return _true_costs(problem.decide(picks), drivers, problem, model)


def _monotone(
    problem: Problem, holds: Sequence[Hold], model: CostModel, switch_s: float
) -> Problem:
    """Drop holders' edges to worse spaces; charge ``switch_s`` for a move to another space."""
    n = len(holds)
    if n == 0:
        return problem
    current = np.array([model.cost(h.driver, h.space) for h in holds])
    own = [h.space.id for h in holds]
    holder = problem.rows < n
    row = np.minimum(problem.rows, n - 1)
    pairs = zip(problem.cols, row, strict=True)
    other = np.array([problem.spaces[j].id != own[r] for j, r in pairs])
    keep = ~holder | (problem.costs <= current[row] + EPS_S)
    costs = problem.costs + (holder & other) * switch_s
    return replace(problem, rows=problem.rows[keep], cols=problem.cols[keep], costs=costs[keep])


def _true_costs(
    result: Assignment, drivers: Sequence[Driver], problem: Problem, model: CostModel
) -> Assignment:
    """Report each driver's real cost (without the switching charge)."""
    by_id = {s.id: s for s in problem.spaces}
    chosen = [(d, result.space_of[d.id]) for d in drivers]
    cost_of = {d.id: model.cost(d, by_id[sid]) for d, sid in chosen if sid is not None}
    return Assignment(result.space_of, cost_of)
