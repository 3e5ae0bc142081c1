"""``citypark evaluate``: the four policies side by side on the same seeds, and the targets.

Runs a given district (the command, ``app.demo.evaluate``, passes the demo district's inventory
as plain GeoJSON) and a larger synthetic district, prints the metrics of the issue and whether
each target is met. Pure: no database, web or MQTT, and no files of the service.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from matching.sim.contention import contention
from matching.sim.engine import SimConfig, run
from matching.sim.metrics import Metrics, measure
from matching.sim.policies import POLICIES
from matching.sim.world import DemandSpec, District, district_from_geojson, make_demand, synthetic_district

HEADER = (f"{'policy':32} {'users':>6} {'success':>8} {'ttp mean':>9} {'ttp p95':>8} {'(parked)':>9} {'cruise m':>9} "
          f"{'walk m':>7} {'conflicts':>9} {'lost→non-user':>13} {'reassign':>8}")


def evaluate_district(district: District, seeds: range, config: SimConfig,
                      spec: DemandSpec, advance: Callable[[int, int], None] | None = None) -> dict[str, Metrics]:
    """Every policy on the same demand of each seed; metrics pooled over the seeds.

    ``advance(done, total)`` is told after each simulated run (a progress bar)."""
    out: dict[str, Metrics] = {}
    total, done = len(POLICIES) * len(seeds), 0
    for key, factory in POLICIES.items():
        runs, extra = [], {"reassignments": 0.0, "assignment_cost": 0.0}
        for seed in seeds:
            policy = factory()
            runs.append(run(district, make_demand(district, spec, seed), policy, config, seed))
            for name in extra:
                extra[name] += float(getattr(policy, name, 0.0))
            done += 1
            if advance is not None:
                advance(done, total)
        out[key] = measure(policy.name, runs, extra)
    return out


@contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise (CI, pipes)."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def format_table(results: dict[str, Metrics]) -> str:
    """One row per policy."""
    rows = [HEADER]
    for m in results.values():
        rows.append(f"{m.policy:32} {m.users:6d} {m.success_rate:8.1%} {m.mean_ttp_s:8.0f}s "
                    f"{m.p95_ttp_s:7.0f}s {m.mean_ttp_parked_s:8.0f}s {m.mean_cruise_m:9.0f} {m.mean_walk_m:7.0f} "
                    f"{m.user_conflicts:9d} {m.gone_to_non_users:13d} {m.reassignments:8d}")
    return "\n".join(rows)


def format_targets(results: dict[str, Metrics]) -> str:
    """The issue's targets, measured in this run."""
    blind = results["cruise"].mean_ttp_s
    lines = []
    for key in ("greedy", "batch"):
        m = results[key]
        cut = 1 - m.mean_ttp_s / blind
        ok = "met" if m.user_conflicts == 0 else "NOT met"
        lines.append(f"  {m.policy}: mean time-to-park {-cut:+.0%} vs blind cruising "
                     f"(target <= -50%: {'met' if cut >= 0.5 else 'NOT met'}); conflicts among "
                     f"citypark users {m.user_conflicts} (target 0: {ok})")
    ratio = results["batch"].assignment_cost_s / max(results["greedy"].assignment_cost_s, 1e-9)
    lines.append(f"  assignment cost in the simulation, batch-optimal / greedy: {ratio:.3f} "
                 "(runs diverge after the first decisions; see the contention test for like-for-like)")
    return "\n".join(lines)


def evaluate(demo: list[dict[str, Any]], *, seeds: int = 3, synthetic_spaces: int = 20000,
             batch_window_s: float = 20.0, service_batch: int = 16, quick: bool = False) -> None:
    """Run the agent-based evaluation on ``demo`` (GeoJSON inventories of one district) and a
    synthetic district, and print metrics and targets."""
    config = SimConfig(batch_window_s=batch_window_s)
    seed_range = range(1 if quick else seeds)
    districts = [district_from_geojson("tiedong demo", demo),
                 synthetic_district(2000 if quick else synthetic_spaces, seed=7)]
    print(f"citypark evaluate — seeds {list(seed_range)}, step {config.dt_s:.0f} s, sensor latency "
          f"{config.sensor_latency_s:.0f} s, batch window {config.batch_window_s:.0f} s, "
          f"{config.candidates} candidates per driver")
    for district in districts:
        started = time.perf_counter()
        with _progress(f"simulating {district.name}") as advance:
            results = evaluate_district(district, seed_range, config, DemandSpec(), advance)
        print(f"\n== {district.name}: {len(district.xy)} spaces "
              f"({time.perf_counter() - started:.1f} s) ==")
        print(format_table(results))
        print(format_targets(results))
        print(_contention_report(district, range(3 if quick else 10), service_batch))


def _contention_report(district: District, seeds: range, service_batch: int) -> str:
    lines = ["  contention test (same requests, 5% of spaces free, all drivers served; target <= 0.85):"]
    for spread, ratios in ((False, (0.5, 0.8, 1.0)), (True, (0.8, 1.0))):
        for ratio in ratios:
            r = contention(district, ratio, seeds, spread=spread)
            cut = contention(district, ratio, seeds, spread=spread, batch_size=service_batch)
            where = "spread over the district" if spread else "around hotspots"
            lines.append(f"    {ratio:.1f} drivers per free space, destinations {where}, {r.drivers} drivers in "
                         f"{r.batches} batches: batch-optimal / greedy total cost = {r.ratio:.3f} "
                         f"({'met' if r.ratio <= 0.85 else 'NOT met'}); avoidable part "
                         f"(above each driver's best alone) = {r.excess_ratio:.3f}; cut into batches of "
                         f"{service_batch} as the service does = {cut.ratio:.3f}")
    return "\n".join(lines)

