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
from numpy.typing import ArrayLike, NDArray

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
        return self.pair_costs(driver_columns(drivers)[:, rows], _space_arrays(spaces)[:, cols])

    def pair_costs(self, d: Array, s: Array) -> Array:
        """Costs of pairs given as columns: ``d`` as :func:`driver_columns` makes them, ``s`` as
        :func:`space_columns`; they broadcast, e.g. one driver ``(7, 1)`` against ``(6, n)``."""
        drive_s = np.hypot(s[0] - d[0], s[1] - d[1]) * self.detour / self.drive_speed_mps
        walk_s = np.hypot(s[0] - d[2], s[1] - d[3]) * self.detour / self.walk_speed_mps
        total = drive_s + walk_s + self._penalties(d, s, drive_s)
        return np.where(self._excluded(d, s, drive_s), np.inf, total)

    def _penalties(self, d: Array, s: Array, drive_s: Array) -> Array:
        spare = (s[2] > d[4]) * self.spare_accessible_s + (s[3] > d[5]) * self.spare_ev_s
        if np.isnan(d[6]).all():  # no intended stay given: nothing falls short
            return spare
        usable_min = np.minimum(s[4] - drive_s / 60, s[5])
        shortfall = np.clip(d[6] - usable_min, 0, None)
        return spare + np.where(np.isfinite(shortfall), shortfall, 0.0) * self.short_stay_s_per_min

    def _excluded(self, d: Array, s: Array, drive_s: Array) -> NDArray[np.bool_]:
        lacks = (d[4] > s[2]) | (d[5] > s[3])
        return lacks | (s[4] * 60 <= drive_s)


def driver_columns(drivers: Sequence[Driver]) -> Array:
    """Rows: x, y, goal x, goal y, accessible, ev, stay minutes (nan = none given)."""
    out = np.empty((7, len(drivers)))
    for i, d in enumerate(drivers):
        gx, gy = d.goal
        stay = np.nan if d.stay_minutes is None else d.stay_minutes
        out[:, i] = (d.x, d.y, gx, gy, d.accessible, d.ev, stay)
    return out


def space_columns(x: ArrayLike, y: ArrayLike, accessible: ArrayLike, ev: ArrayLike,
                  available_minutes: ArrayLike, max_stay_minutes: ArrayLike) -> Array:
    """Spaces as rows x, y, accessible, ev, available minutes, max stay minutes (inf = unlimited),
    for :meth:`CostModel.pair_costs` — the same as many :class:`Space` objects, without them."""
    return np.array([x, y, accessible, ev, available_minutes, max_stay_minutes], dtype=float)


def _space_arrays(spaces: Sequence[Space]) -> Array:
    """:func:`space_columns` of ``Space`` objects (None → inf)."""
    return space_columns([s.x for s in spaces], [s.y for s in spaces], [s.accessible for s in spaces],
                         [s.ev for s in spaces],
                         [np.inf if s.available_minutes is None else s.available_minutes for s in spaces],
                         [np.inf if s.max_stay_minutes is None else s.max_stay_minutes for s in spaces])
