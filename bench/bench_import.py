"""``citypark import`` of a city-sized inventory against ``citypark seed --synthetic`` (issue 13 item 1).

Both commands run as child processes on one fresh database, in the same run, on the same number
of spaces: seed writes its rows with COPY (the floor of what a set-based write costs), import
streams a GeoJSON file of the same size (``app.inventory.city_file``: sensors, rules, DevEUIs),
validates every feature and writes through staging tables. Printed: seconds per 100,000 spaces
of each, their ratio (target ≤ 3), a re-import of the same file (rewrites nothing) and the peak
RSS of every child (``os.wait4``'s resource usage of that child alone).

    .venv/bin/python bench/bench_import.py [--spaces 250000] [--runs 1]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from app.core import migrate as database
from app.core.settings import Settings
from app.inventory.city_file import write_city

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "citypark_bench_import"


def child(settings: Settings, *args: str) -> tuple[float, float, str]:
    """Seconds and peak RSS (MiB) of one ``citypark`` command, and its last line of output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPARK_")}
    env["CITYPARK_DATABASE_URL"] = settings.database_url
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", *args], cwd=ROOT,
                                env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"citypark {' '.join(args)} failed: {err.read().strip()}")
        return seconds, usage.ru_maxrss / 1024, (out.read().strip().splitlines() or [""])[-1]


def main(spaces: int = typer.Option(250_000)) -> None:
    base = os.environ.get("CITYPARK_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432")
    settings = Settings(database_url=f"{base.rstrip('/')}/{BENCH_DB}", rate_limit="0")
    asyncio.run(database.drop_database(settings))
    asyncio.run(database.migrate(settings))
    per = 100_000 / spaces
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "city.geojson"
        t0 = time.perf_counter()
        write_city(path, spaces=spaces)
        print(f"file: {spaces:,} spaces, {path.stat().st_size / 2**20:.0f} MiB, written in "
              f"{time.perf_counter() - t0:.1f} s (not timed)")
        seed_s, seed_rss, _ = child(settings, "seed", "--synthetic", str(spaces))
        import_s, import_rss, line = child(settings, "import", str(path), "--operator", "city-op")
        again_s, again_rss, _ = child(settings, "import", str(path), "--operator", "city-op")
    print(f"seed --synthetic (COPY): {seed_s * per:6.1f} s per 100,000 spaces, peak RSS {seed_rss:4.0f} MiB")
    print(f"import:                  {import_s * per:6.1f} s per 100,000 spaces, peak RSS {import_rss:4.0f} MiB  "
          f"({line})")
    print(f"re-import (no change):   {again_s * per:6.1f} s per 100,000 spaces, peak RSS {again_rss:4.0f} MiB")
    print(f"ratio import / seed: {import_s / seed_s:.2f} (target ≤ 3)")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")
    asyncio.run(database.drop_database(settings))


if __name__ == "__main__":
    typer.run(main)
