"""Cars: where they are, what they aim for, and how they move on a Manhattan street grid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

HEADINGS = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))


@dataclass(slots=True)
class Car:
    """A citypark user (or blind cruiser) from request to parked or given up."""

    idx: int
    t0: float
    x: float
    y: float
    dest: tuple[float, float]
    stay_s: float
    origin: tuple[float, float] = (0.0, 0.0)
    phase: str = "to_dest"  # to_dest | approach | cruise | parked | failed
    target: int = -1  # space index aimed at (held or told)
    held: bool = False
    driven: float = 0.0
    heading: int = 0
    to_turn: float = 0.0
    parked_at: float = math.nan
    gave_up_at: float = math.nan
    space: int = -1
    gone_on_arrival: int = 0
    gone_to_user: int = 0
    reassigned: int = 0
    first_cost: float = math.nan
    seen: list[int] = field(default_factory=list)

    @property
    def pos(self) -> tuple[float, float]:
        """Current position (metres)."""
        return self.x, self.y

    @property
    def active(self) -> bool:
        """Still looking for a space."""
        return self.phase not in ("parked", "failed")


def manhattan(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Street distance on a grid."""
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def move_toward(car: Car, goal: tuple[float, float], step: float) -> bool:
    """Drive up to ``step`` metres toward ``goal`` (x first, then y); True on arrival."""
    for axis in (0, 1):
        here = car.x if axis == 0 else car.y
        delta = goal[axis] - here
        move = min(abs(delta), step)
        step -= move
        car.driven += move
        if axis == 0:
            car.x += math.copysign(move, delta)
        else:
            car.y += math.copysign(move, delta)
    return manhattan(car.pos, goal) < 1e-6


def cruise(car: Car, step: float, block_m: float, rng: np.random.Generator) -> None:
    """Circle around the destination: straight for a block, then turn, drifting back home."""
    while step > 0:
        move = min(step, block_m - car.to_turn)
        dx, dy = HEADINGS[car.heading]
        car.x, car.y = car.x + dx * move, car.y + dy * move
        car.driven += move
        car.to_turn += move
        step -= move
        if car.to_turn >= block_m - 1e-9:
            car.to_turn = 0.0
            car.heading = _turn(car, rng)


def _turn(car: Car, rng: np.random.Generator) -> int:
    """Left, right or straight (never U-turn); head back when more than 2 blocks away."""
    options = [(car.heading + k) % 4 for k in (0, 1, 3)]
    if manhattan(car.pos, car.dest) > 250 and rng.random() < 0.8:
        return min(options, key=lambda h: _after(car, h))
    return int(rng.choice(options))


def _after(car: Car, heading: int) -> float:
    dx, dy = HEADINGS[heading]
    return manhattan((car.x + dx * 100, car.y + dy * 100), car.dest)
