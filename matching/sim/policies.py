"""The four policies compared: blind cruising, guidance without holds, holds + greedy,
holds + batch-optimal (both with monotone re-assignment when a held space is lost)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from matching.model import Driver, Hold, Space
from matching.reassign import reassign
from matching.sim.agents import Car
from matching.sim.engine import Policy, World
from matching.solve import build_problem, candidate_depth, greedy_picks, optimal_picks


class BlindCruising:
    """Drive to the destination, then circle until a free space comes into sight."""

    name = "blind cruising"
    respects_holds = False

    def request(self, car: Car, world: World) -> None:
        car.phase = "to_dest"

    def tick(self, world: World, cars: list[Car]) -> None:
        return None

    def taken_on_arrival(self, car: Car, world: World) -> None:
        return None


class Guidance:
    """Everyone is told the sensed-free space nearest their destination — no holds."""

    name = "guidance, no holds"
    respects_holds = False

    def request(self, car: Car, world: World) -> None:
        found = world.nearest(car.dest, 1, ~world.sensed_occupied())
        if found:
            world.aim(car, found[0], held=False)
        else:
            car.phase = "to_dest"

    def tick(self, world: World, cars: list[Car]) -> None:
        return None

    def taken_on_arrival(self, car: Car, world: World) -> None:
        self.request(car, world)


@dataclass
class Holds:
    """citypark: holds on sensed-free spaces, solved greedily or batch-optimally."""

    optimal: bool
    pending: list[Car] = field(default_factory=list)
    next_solve: float = 0.0
    respects_holds = True
    assignment_cost: float = 0.0
    reassignments: int = 0

    @property
    def name(self) -> str:
        return "citypark holds + " + ("batch-optimal" if self.optimal else "greedy")

    def request(self, car: Car, world: World) -> None:
        car.phase = "to_dest"
        self.pending.append(car)

    def taken_on_arrival(self, car: Car, world: World) -> None:
        self.pending.append(car)

    def tick(self, world: World, cars: list[Car]) -> None:
        self._reassign_lost(world, cars)
        window = world.config.batch_window_s if self.optimal else 0.0
        if self.pending and world.t >= self.next_solve:
            self._solve(world)
            self.next_solve = world.t + window

    def _solve(self, world: World) -> None:
        waiting = [c for c in self.pending if c.active and c.target < 0]
        free = _free(world)
        drivers = [_driver(c) for c in waiting]
        depth = candidate_depth(len(waiting), world.config.candidates)
        cands = [[_space(world, s) for s in world.nearest(c.dest, depth, free)] for c in waiting]
        problem = build_problem(drivers, cands, world.cost)
        picks = optimal_picks(problem) if self.optimal else greedy_picks(problem)
        for i, k in picks.items():
            car = waiting[i]
            world.aim(car, int(problem.spaces[problem.cols[k]].id), held=True)
            self.assignment_cost += float(problem.costs[k])
        self.pending = [c for c in waiting if c.target < 0]

    def _reassign_lost(self, world: World, cars: list[Car]) -> None:
        """Held spaces sensed occupied: their drivers are re-assigned, monotonically."""
        known = world.known_occupied()
        for car in [c for c in cars if c.held and known[c.target]]:
            world.release(car)
            self.reassignments += 1
            car.reassigned += 1
            self._reassign_one(world, car, cars)

    def _reassign_one(self, world: World, car: Car, cars: list[Car]) -> None:
        free = _free(world)
        near = [c for c in cars if c.held and np.hypot(*(world.xy[c.target] - car.dest)) < 300][:8]
        holds = [Hold(_driver(c), _space(world, c.target),
                      tuple(_space(world, s) for s in world.nearest(c.dest, 5, free))) for c in near]
        cands = [[_space(world, s) for s in world.nearest(car.dest, world.config.candidates, free)]]
        result = reassign(holds, [_driver(car)], cands, world.cost)
        moved = [(c, int(str(result.space_of[str(c.idx)]))) for c in near]
        moved = [(c, s) for c, s in moved if s != c.target]
        for c, _ in moved:  # release first: holders may swap spaces among themselves
            world.release(c)
        for c, s in moved:
            world.aim(c, s, held=True)
        chosen = result.space_of[str(car.idx)]
        if chosen is None:
            self.pending.append(car)
        else:
            world.aim(car, int(chosen), held=True)


def _free(world: World) -> np.ndarray:
    return ~world.known_occupied() & (world.held_by < 0)


def _driver(car: Car) -> Driver:
    return Driver(str(car.idx), car.x, car.y, car.dest[0], car.dest[1])


def _space(world: World, s: int) -> Space:
    return Space(str(s), float(world.xy[s, 0]), float(world.xy[s, 1]))


POLICIES: dict[str, Callable[[], Policy]] = {
    "cruise": BlindCruising,
    "guide": Guidance,
    "greedy": lambda: Holds(optimal=False),
    "batch": lambda: Holds(optimal=True),
}
