"""The cost of giving driver d space s, in seconds of the driver's time.

cost = drive time from the driver to the space + walk time from the space to the destination
(or back to the driver when there is no destination) + penalties. A space is excluded (cost
``inf``) when it lacks a need of the driver (accessible, EV) or closes before the driver can
reach it. Penalties keep accessible and EV spaces for those who need them and steer drivers
away from spaces that will close, or whose time limit ends, before the intended stay is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from matching.model import Driver, Space

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CostModel:
    """Weights of the cost; the defaults are urban speeds and a street detour factor."""

    drive_speed_mps: float = 7.0  # ~25 km/h in town
    walk_speed_mps: float = 1.3
    detour: float = 1.3  # street distance / straight-line distance
    spare_accessible_s: float = 300.0  # using an accessible space without needing it
    spare_ev_s: float = 120.0
    short_stay_s_per_min: float = 20.0  # per minute the space cannot cover of the stay

    def cost(self, driver: Driver, space: Space) -> float:
        """Cost of one pair (``inf`` when excluded)."""
        return float(self.edge_costs([driver], [space], np.zeros(1, int), np.zeros(1, int))[0])

    def matrix(self, drivers: Sequence[Driver], spaces: Sequence[Space]) -> Array:
        """Dense ``len(drivers) × len(spaces)`` cost matrix."""
        rows, cols = np.divmod(np.arange(len(drivers) * len(spaces)), max(len(spaces), 1))
        return self.edge_costs(drivers, spaces, rows, cols).reshape(len(drivers), len(spaces))

    def edge_costs(
        self,
        drivers: Sequence[Driver],
        spaces: Sequence[Space],
        rows: NDArray[np.int_],
        cols: NDArray[np.int_],
    ) -> Array:
        """Costs of the pairs ``(drivers[rows[k]], spaces[cols[k]])``, vectorised."""
        d, s = _driver_arrays(drivers)[:, rows], _space_arrays(spaces)[:, cols]
        drive_s = np.hypot(s[0] - d[0], s[1] - d[1]) * self.detour / self.drive_speed_mps
        walk_s = np.hypot(s[0] - d[2], s[1] - d[3]) * self.detour / self.walk_speed_mps
        total = drive_s + walk_s + self._penalties(d, s, drive_s)
        return np.where(self._excluded(d, s, drive_s), np.inf, total)

    def _penalties(self, d: Array, s: Array, drive_s: Array) -> Array:
        spare = (s[2] > d[4]) * self.spare_accessible_s + (s[3] > d[5]) * self.spare_ev_s
        usable_min = np.minimum(s[4] - drive_s / 60, s[5])
        shortfall = np.nan_to_num(np.clip(d[6] - usable_min, 0, None), nan=0.0, posinf=0.0)
        return spare + shortfall * self.short_stay_s_per_min

    def _excluded(self, d: Array, s: Array, drive_s: Array) -> NDArray[np.bool_]:
        lacks = (d[4] > s[2]) | (d[5] > s[3])
        return lacks | (s[4] * 60 <= drive_s)


def _driver_arrays(drivers: Sequence[Driver]) -> Array:
    """Rows: x, y, goal x, goal y, accessible, ev, stay minutes (inf = none given → nan-safe)."""
    out = np.empty((7, len(drivers)))
    for i, d in enumerate(drivers):
        gx, gy = d.goal
        stay = np.nan if d.stay_minutes is None else d.stay_minutes
        out[:, i] = (d.x, d.y, gx, gy, d.accessible, d.ev, stay)
    return out


def _space_arrays(spaces: Sequence[Space]) -> Array:
    """Rows: x, y, accessible, ev, available minutes, max stay minutes (None → inf)."""
    out = np.empty((6, len(spaces)))
    for j, s in enumerate(spaces):
        avail = np.inf if s.available_minutes is None else s.available_minutes
        limit = np.inf if s.max_stay_minutes is None else s.max_stay_minutes
        out[:, j] = (s.x, s.y, s.accessible, s.ev, avail, limit)
    return out
