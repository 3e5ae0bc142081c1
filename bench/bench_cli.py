"""``citypark --help`` against ``python -c pass`` (issue 18: target under 0.5 s warm).

Runs each command ``--runs`` times, interleaved (so machine noise hits both alike), after one
warm-up run each, and prints the medians and their ratio. For comparison it also times what
``--help`` cost before the commands were loaded lazily: importing every command's module.

    .venv/bin/python bench/bench_cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "citypark --help": [sys.executable, "-c", "import sys; sys.argv = ['citypark', '--help']\n"
                        "from app.cli import main\nmain()"],
    "eager imports (before)": [sys.executable, "-c", "import app.cli, app.core.db, sensors.cli, sensors.worker, "
                               "sensors.simulator, matching.sim.evaluate, app.enforcement.cli"],
}


def once(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    for argv in COMMANDS.values():  # warm the page cache and __pycache__
        once(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(once(argv))
    base = statistics.median(times["python -c pass"])
    print(f"citypark CLI start-up, median of {runs} warm runs each (interleaved)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:24} {median * 1000:7.0f} ms   {median / base:5.1f}× python -c pass"
              f"   (min {min(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms)")
    help_s = statistics.median(times["citypark --help"])
    print(f"  target: --help under 500 ms warm: {'met' if help_s < 0.5 else 'NOT met'} ({help_s * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
