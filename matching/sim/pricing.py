"""Prices in the agent simulation: blocks, their occupancy over a run, and price-elastic demand.

Blocks are square cells of ``block_m`` metres holding spaces. Demand responds to price by
redistribution, as SFpark's evaluations found: a driver whose destination lies in a block of
price ``p_own`` looks at the cheapest block with spaces within ``walk_m`` of the destination
(price ``p_alt``) and parks there instead with probability ``1 − (p_alt / p_own) ** |ε|``
(constant elasticity ``ε``, −0.4 by default: SFpark's measured mean was about −0.4). Nobody is
lost or added; raising a full block's price sends some of its drivers next door, lowering an
idle one's draws some in. Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from matching.sim.engine import World
from matching.sim.world import Demand, District

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Blocks:
    """``of_space[i]`` = block of space i; ``centres[b]`` its centre (metres)."""

    of_space: NDArray[np.int64]
    centres: Floats
    keys: dict[tuple[int, int], int]
    block_m: float

    def of_points(self, xy: Floats) -> NDArray[np.int64]:
        """Block of each point (−1 outside every block with spaces)."""
        cells = np.floor(xy / self.block_m).astype(np.int64)
        return np.array([self.keys.get((int(i), int(j)), -1) for i, j in cells], dtype=np.int64)


def blocks_of(district: District, block_m: float = 200.0) -> Blocks:
    cells = np.floor(district.xy / block_m).astype(np.int64)
    keys: dict[tuple[int, int], int] = {}
    of_space = np.array([keys.setdefault((int(i), int(j)), len(keys)) for i, j in cells], dtype=np.int64)
    centres = (np.array(list(keys), dtype=float) + 0.5) * block_m
    return Blocks(of_space, centres, keys, block_m)


@dataclass
class Sampler:
    """Occupancy of every block every ``every_s`` seconds of a run (an ``observe`` for ``run``)."""

    blocks: Blocks
    every_s: float = 300.0
    rows: list[Floats] = field(default_factory=list)
    _next: float = 0.0

    def __call__(self, world: World) -> None:
        if world.t < self._next:
            return
        self._next = world.t + self.every_s
        n = np.bincount(self.blocks.of_space, minlength=len(self.blocks.centres))
        occ = np.bincount(self.blocks.of_space, weights=world.occ.astype(float), minlength=len(n))
        self.rows.append(occ / np.maximum(n, 1))

    def mean(self) -> Floats:
        return np.mean(self.rows, axis=0) if self.rows else np.zeros(len(self.blocks.centres))

    def in_band(self, low: float, high: float) -> float:
        """Share of (block, sample) pairs with an occupancy inside ``[low, high]``."""
        data = np.array(self.rows)
        return float(np.mean((data >= low) & (data <= high))) if data.size else 0.0


def reprice(demand: Demand, blocks: Blocks, prices: Floats, *, elasticity: float = -0.4,
            walk_m: float = 300.0, seed: int = 0) -> Demand:
    """The demand after drivers respond to ``prices`` (one per block); see the module docstring."""
    rng = np.random.default_rng(seed)
    return replace(demand, user_dest=_move(demand.user_dest, blocks, prices, elasticity, walk_m, rng),
                   other_at=_move(demand.other_at, blocks, prices, elasticity, walk_m, rng))


def _move(points: Floats, blocks: Blocks, prices: Floats, elasticity: float, walk_m: float,
          rng: np.random.Generator) -> Floats:
    own = blocks.of_points(points)
    out = points.copy()
    for k, (point, b) in enumerate(zip(points, own, strict=True)):
        near = np.flatnonzero(np.abs(blocks.centres - point).sum(axis=1) <= walk_m)
        if b < 0 or not len(near):
            continue
        alt = near[np.argmin(prices[near])]
        ratio = prices[alt] / prices[b]
        if ratio < 1 and rng.random() < 1 - ratio ** abs(elasticity):
            out[k] = blocks.centres[alt] + rng.uniform(-blocks.block_m / 2, blocks.block_m / 2, 2)
    return out


