"""What the evaluation reports for each policy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from matching.sim.agents import Car, manhattan
from matching.sim.engine import World


@dataclass(frozen=True)
class Metrics:
    """Per-policy outcome over the users of one or more runs."""

    policy: str
    users: int
    success_rate: float
    mean_ttp_s: float  # every user; a give-up counts as the time searched before giving up
    p95_ttp_s: float
    mean_ttp_parked_s: float  # only the users who parked
    mean_cruise_m: float
    mean_walk_m: float
    user_conflicts: int  # two users sent to one space, or space gone to another user
    gone_to_non_users: int  # space taken by a non-user (whom no hold binds) on arrival
    reassignments: int
    assignment_cost_s: float


def measure(policy_name: str, runs: list[tuple[list[Car], World]], extra: dict[str, float]) -> Metrics:
    """Pool the users of ``runs`` (same policy, different seeds) into one :class:`Metrics`."""
    cars = [c for cs, _ in runs for c in cs]
    parked = [c for c in cars if c.phase == "parked"]
    # Leaving out those who gave up would flatter the policy that fails most (their searches
    # were the longest): they count with the time they searched, a lower bound of their ttp.
    ttp = np.array([(c.parked_at if c.phase == "parked" else c.gave_up_at) - c.t0 for c in cars
                    if c.phase in ("parked", "failed")])
    ttp_parked = np.array([c.parked_at - c.t0 for c in parked])
    cruise = [c.driven - manhattan(c.origin, _space_xy(c, w)) for cs, w in runs for c in cs if c.phase == "parked"]
    walk = [manhattan(_space_xy(c, w), c.dest) for cs, w in runs for c in cs if c.phase == "parked"]
    return Metrics(
        policy=policy_name,
        users=len(cars),
        success_rate=len(parked) / max(len(cars), 1),
        mean_ttp_s=float(ttp.mean()) if len(ttp) else float("nan"),
        p95_ttp_s=float(np.percentile(ttp, 95)) if len(ttp) else float("nan"),
        mean_ttp_parked_s=float(ttp_parked.mean()) if len(ttp_parked) else float("nan"),
        mean_cruise_m=float(np.mean(cruise)) if cruise else float("nan"),
        mean_walk_m=float(np.mean(walk)) if walk else float("nan"),
        user_conflicts=sum(w.double_sent for _, w in runs) + sum(c.gone_to_user for c in cars),
        gone_to_non_users=sum(c.gone_on_arrival - c.gone_to_user for c in cars),
        reassignments=int(extra.get("reassignments", 0)),
        assignment_cost_s=float(extra.get("assignment_cost", 0.0)),
    )


def _space_xy(car: Car, world: World) -> tuple[float, float]:
    return float(world.xy[car.space, 0]), float(world.xy[car.space, 1])
