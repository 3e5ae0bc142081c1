"""``citypark evaluate``: the agent simulation of ``matching.sim`` on the demo district."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from matching.sim import evaluate as sim_evaluate


def demo_inventory(name: str = "tiedong") -> list[dict[str, Any]]:
    """The demo district's inventory files, parsed (the package data of ``app.demo``)."""
    folder = resources.files("app.demo") / name
    return [json.loads(f.read_text(encoding="utf-8"))
            for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".geojson")]


def main(seeds: int = 3, synthetic_spaces: int = 20000, batch_window_s: float = 20.0,
         service_batch: int = 16, quick: bool = False, pricing: bool = False, rounds: int = 4,
         elasticity: float = -0.4, step: float = 0.5, base_fee: float = 5.0) -> None:
    """Run the agent-based evaluation and print metrics and targets.

    With ``--pricing``: instead, apply the management pricing rule to the simulation for
    ``--rounds`` periods (price-elastic demand, ``--elasticity``) and report occupancy-in-band
    and time-to-park before and after (``app.demo.pricing_eval``)."""
    if pricing:
        _pricing(seeds=1 if quick else seeds, rounds=rounds, elasticity=elasticity, step=step, base_fee=base_fee)
        return
    sim_evaluate.evaluate(demo_inventory(), seeds=seeds, synthetic_spaces=synthetic_spaces,
                          batch_window_s=batch_window_s, service_batch=service_batch, quick=quick)



def _pricing(*, seeds: int, rounds: int, elasticity: float, step: float, base_fee: float) -> None:
    from app.demo import pricing_eval
    from app.management.pricing import Rule
    from matching.sim.world import district_from_geojson

    rule = Rule(step=step, floor=max(step, base_fee / 5), cap=base_fee * 3)
    district = district_from_geojson("tiedong demo", demo_inventory())
    rows = pricing_eval.evaluate_pricing(district, seeds=range(seeds), rounds=rounds, elasticity=elasticity,
                                         rule=rule, base_fee=base_fee)
    print(pricing_eval.report(district.name, rows, rule, elasticity, base_fee))
