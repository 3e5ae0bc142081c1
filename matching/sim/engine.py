"""The world of the simulation (true and sensed occupancy, holds) and its time-stepped loop.

Each step: parked cars leave, non-users take the nearest free space they find (they know
nothing of holds), users' requests reach the policy, the policy decides, and cars move.
The system sees occupancy through sensors ``sensor_latency_s`` late.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from matching.cost import CostModel
from matching.sim.agents import Car, cruise, manhattan, move_toward
from matching.sim.world import Demand, District


@dataclass(frozen=True)
class SimConfig:
    """Physical and system parameters shared by all policies."""

    dt_s: float = 5.0
    drive_mps: float = 7.0
    cruise_mps: float = 4.0
    sensor_latency_s: float = 15.0
    see_radius_m: float = 30.0
    max_search_s: float = 1800.0
    candidates: int = 20
    batch_window_s: float = 20.0
    block_m: float = 100.0
    other_radius_m: float = 400.0


class Policy(Protocol):
    """How drivers are guided; see ``matching.sim.policies``."""

    @property
    def name(self) -> str: ...

    @property
    def respects_holds(self) -> bool: ...

    def request(self, car: Car, world: World) -> None: ...

    def tick(self, world: World, cars: list[Car]) -> None: ...

    def taken_on_arrival(self, car: Car, world: World) -> None: ...


class World:
    """Occupancy (truth and as sensed), holds and the spatial index of the spaces."""

    def __init__(self, district: District, demand: Demand, config: SimConfig, seed: int) -> None:
        n = len(district.xy)
        self.xy, self.config, self.t = district.xy, config, 0.0
        self.tree = cKDTree(district.xy)
        self.occ = demand.initial_until > 0
        self.leave_at = demand.initial_until.copy()
        self.prev_occ = self.occ.copy()
        self.changed_at = np.full(n, -math.inf)
        self.held_by = np.full(n, -1)
        self.by_user = np.zeros(n, dtype=bool)
        self.aimed = np.zeros(n, dtype=int)
        self.double_sent = 0
        self.rng = np.random.default_rng(seed)
        self.cost = CostModel(drive_speed_mps=config.drive_mps, detour=1.0)

    def sensed_occupied(self) -> NDArray[np.bool_]:
        """Occupancy as the system knows it: changes reach it after the sensor latency."""
        fresh = self.t - self.changed_at < self.config.sensor_latency_s
        return np.where(fresh, self.prev_occ, self.occ)

    def known_occupied(self) -> NDArray[np.bool_]:
        """What citypark knows: sensed occupancy, plus spaces its own users just parked in
        (their position updates report the arrival before the sensor does)."""
        return self.sensed_occupied() | (self.occ & self.by_user)

    def set_occupied(self, s: int, occupied: bool, until: float = math.inf, user: bool = False) -> None:
        """Change the true state of space ``s`` (remembering the previous for the latency)."""
        if self.t - self.changed_at[s] >= self.config.sensor_latency_s:
            self.prev_occ[s] = self.occ[s]  # the last change has been sensed by now
        self.occ[s], self.leave_at[s], self.by_user[s] = occupied, until, user
        self.changed_at[s] = self.t

    def nearest(self, point: tuple[float, float], k: int, ok: NDArray[np.bool_]) -> list[int]:
        """Up to ``k`` spaces nearest ``point`` among those where ``ok`` holds."""
        n, want = len(self.xy), 4 * k
        while True:
            _, idx = self.tree.query(point, k=min(n, want))
            found = [int(i) for i in np.atleast_1d(idx) if ok[i]][:k]
            if len(found) == k or want >= n:
                return found
            want *= 4

    def aim(self, car: Car, s: int, held: bool) -> None:
        """Send ``car`` to space ``s`` (counting two drivers sent to one space)."""
        self.release(car)
        self.double_sent += int(self.aimed[s] > 0)
        self.aimed[s] += 1
        car.target, car.held, car.phase = s, held, "approach"
        if held:
            self.held_by[s] = car.idx

    def release(self, car: Car) -> None:
        """Forget where ``car`` was heading (and its hold)."""
        if car.target >= 0:
            self.aimed[car.target] -= 1
            if car.held and self.held_by[car.target] == car.idx:
                self.held_by[car.target] = -1
        car.target, car.held = -1, False

    def park(self, car: Car, s: int) -> None:
        """``car`` parks in ``s``."""
        car.driven += manhattan(car.pos, tuple(self.xy[s]))
        self.release(car)
        self.set_occupied(s, True, self.t + car.stay_s, user=True)
        car.phase, car.space, car.parked_at = "parked", s, self.t

    def departures(self) -> None:
        """Parked cars whose stay is over leave."""
        for s in np.flatnonzero(self.occ & (self.leave_at <= self.t)):
            self.set_occupied(int(s), False, 0.0)


def run(district: District, demand: Demand, policy: Policy, config: SimConfig, seed: int,
        observe: Callable[[World], None] | None = None) -> tuple[list[Car], World]:
    """Simulate ``policy`` on ``demand``; returns the users' cars and the final world.

    ``observe(world)``, when given, is called after every step (e.g. to sample occupancy)."""
    world, cars, active = World(district, demand, config, seed), [], []
    next_user = next_other = 0
    for t in np.arange(0.0, float(demand.other_t.max(initial=0) + config.max_search_s), config.dt_s):
        world.t = float(t)
        world.departures()
        next_other = _non_users(world, demand, next_other)
        while next_user < len(demand.user_t) and demand.user_t[next_user] <= t:
            car = _new_car(demand, next_user, world.t)
            cars.append(car)
            active.append(car)
            policy.request(car, world)
            next_user += 1
        policy.tick(world, active)
        for car in active:
            _advance(car, world, policy)
        active = [c for c in active if c.active]
        if observe is not None:
            observe(world)
        if not active and next_user == len(demand.user_t):
            break
    return cars, world


def _new_car(demand: Demand, i: int, t: float) -> Car:
    origin = (float(demand.user_origin[i, 0]), float(demand.user_origin[i, 1]))
    dest = (float(demand.user_dest[i, 0]), float(demand.user_dest[i, 1]))
    return Car(i, t, origin[0], origin[1], dest, float(demand.user_stay[i]), origin)


def _non_users(world: World, demand: Demand, i: int) -> int:
    """Non-users arriving by now take the nearest truly free space near them, held or not."""
    while i < len(demand.other_t) and demand.other_t[i] <= world.t:
        at = (float(demand.other_at[i, 0]), float(demand.other_at[i, 1]))
        found = world.nearest(at, 1, ~world.occ)
        if found and manhattan(at, tuple(world.xy[found[0]])) <= world.config.other_radius_m:
            world.set_occupied(found[0], True, world.t + float(demand.other_stay[i]))
        i += 1
    return i


def _advance(car: Car, world: World, policy: Policy) -> None:
    """Move one car for one step and settle what happens where it gets to."""
    if world.t - car.t0 > world.config.max_search_s:
        world.release(car)
        car.phase, car.gave_up_at = "failed", world.t
    elif car.phase == "approach":
        _approach(car, world, policy)
    elif car.phase == "to_dest":
        if move_toward(car, car.dest, world.config.drive_mps * world.config.dt_s):
            car.phase, car.heading = "cruise", int(world.rng.integers(0, 4))
    elif car.phase == "cruise":
        cruise(car, world.config.cruise_mps * world.config.dt_s, world.config.block_m, world.rng)
        _look_around(car, world, policy)


def _approach(car: Car, world: World, policy: Policy) -> None:
    s = car.target
    if not move_toward(car, tuple(world.xy[s]), world.config.drive_mps * world.config.dt_s):
        return
    if not world.occ[s]:
        world.park(car, s)
        return
    car.gone_on_arrival += 1
    car.gone_to_user += int(world.by_user[s])
    world.release(car)
    car.phase = "cruise"
    policy.taken_on_arrival(car, world)


def _look_around(car: Car, world: World, policy: Policy) -> None:
    """A cruising driver takes the nearest free space in sight (unheld ones, if it uses holds)."""
    seen = world.tree.query_ball_point(car.pos, world.config.see_radius_m)
    free = [s for s in seen if not world.occ[s] and not (policy.respects_holds and world.held_by[s] >= 0)]
    if free:
        world.park(car, min(free, key=lambda s: manhattan(car.pos, tuple(world.xy[s]))))
