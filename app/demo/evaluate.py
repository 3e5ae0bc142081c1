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
         service_batch: int = 16, quick: bool = False) -> None:
    """Run the agent-based evaluation and print metrics and targets."""
    sim_evaluate.evaluate(demo_inventory(), seeds=seeds, synthetic_spaces=synthetic_spaces,
                          batch_window_s=batch_window_s, service_batch=service_batch, quick=quick)
