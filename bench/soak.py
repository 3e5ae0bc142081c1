"""Soak: ingest at 80 % of its measured maximum for N minutes while the API serves reads.

    .venv/bin/python bench/soak.py [--minutes 10] [--workers 1] [--readers 4] [--spaces 20000]
                                   [--load 0.8] [--calibrate-events 30000] [--png soak.png]

1. Seeds a scratch database (demo district + ``--spaces`` synthetic sensor-equipped spaces) and
   starts a private Mosquitto (bench/bench_ingest.py's helpers).
2. Measures the maximum ingest rate the way bench_ingest.py does (a backlog of
   ``--calibrate-events`` drained by ``citypark ingest --workers W``).
3. Runs ``citypark ingest --workers W`` and ``citypark serve`` (rate limit off) while a publisher
   process sends fresh occupancy events at ``--load`` × that maximum, paced every 10 ms, and
   ``--readers`` closed-loop HTTP clients ask ``GET /v1/spaces/free`` and ``GET /v1/facilities``
   at random points of the district.
4. Every ``--sample-s`` (10 s) prints a row: events published and committed, backlog, ingest lag
   (commit time − observed_at of the newest event of the last batch, the workers' gauge), the RSS
   of every process (publisher; ingest's supervisor, workers and writers as ``ingest``,
   ``ingest.1``, ``ingest.1.1`` …; the API; this driver with its readers), database size, and the
   readers' requests/s, p50, p99 and errors; at the end draws the series to a PNG
   (matplotlib) and prints each process's RSS slope over the second half (MiB per 10 min) and
   the backlog's, which are the targets: flat RSS, bounded lag.

The machine's other load shows up in every figure: read them as the shape of the curves.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_ingest as bi  # noqa: E402

from app.core import migrate as database  # noqa: E402
from app.core.settings import Settings  # noqa: E402

BBOX = (122.97, 41.09, 123.03, 41.13)  # lon/lat box of the demo district and synthetic spaces


def paced_publisher(port: int, sensors: list[tuple[str, str]], rate: float, stop: mp.Event,  # type: ignore[valid-type]
                    published: mp.Value) -> None:  # type: ignore[valid-type]
    """Fresh events (observed now, increasing seq per sensor) at ``rate`` per second until ``stop``."""
    c = bi.client(port)
    c.loop_start()
    seq = [0] * len(sensors)
    window: list[object] = []
    start, sent, i = time.monotonic(), 0, 0
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        now = datetime.now(UTC).isoformat()
        while sent < due:
            k = i % len(sensors)
            sensor_id, operator_id = sensors[k]
            seq[k] += 1
            body = orjson.dumps({"occupied": random.random() < 0.5, "observed_at": now, "seq": seq[k]})
            window.append(c.publish(f"{bi.TOPIC_ROOT}/{operator_id}/sensors/{sensor_id}/occupancy", body, qos=1))
            sent += 1
            i += 1
            if len(window) > 20_000:
                window.pop(0).wait_for_publish(timeout=600)  # type: ignore[attr-defined]
        published.value = sent
        time.sleep(0.01)  # pacing tick of the publisher
    c.disconnect()
    c.loop_stop()


@dataclass
class Reads:
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0

    def take(self) -> tuple[int, int, list[float]]:
        out = (self.requests, self.errors, self.latencies)
        self.latencies, self.requests, self.errors = [], 0, 0
        return out


async def reader(base: str, reads: Reads, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while not stop.is_set():
            lon, lat = random.uniform(BBOX[0], BBOX[2]), random.uniform(BBOX[1], BBOX[3])
            path = "/v1/spaces/free" if random.random() < 0.7 else "/v1/facilities"
            t0 = time.perf_counter()
            try:
                ok = (await client.get(path, params={"lat": f"{lat:.5f}", "lon": f"{lon:.5f}"})).status_code == 200
            except httpx.HTTPError:
                ok = False
            reads.latencies.append((time.perf_counter() - t0) * 1000)
            reads.requests += 1
            reads.errors += not ok


def gauge_max(ports: list[int], name: str) -> float:
    values = []
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            continue
        values += [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    return max(values, default=float("nan"))


def process_tree(label: str, root: psutil.Process) -> dict[str, psutil.Process]:
    """``root`` and its descendants as ``label``, ``label.1``, ``label.1.1`` … (multiprocessing's
    resource tracker left out): for ingest, the supervisor, its workers and their writers."""
    out = {label: root}
    children = [c for c in root.children() if "resource_tracker" not in " ".join(c.cmdline())]
    for i, child in enumerate(children, 1):
        out.update(process_tree(f"{label}.{i}", child))
    return out


def rss_by_process(named: dict[str, psutil.Process]) -> dict[str, float]:
    """MiB per process (each alone: a parent does not include its children)."""
    out = {}
    for name, proc in named.items():
        try:
            out[name] = proc.memory_info().rss / 2**20
        except psutil.Error:
            out[name] = float("nan")
    return out


async def db_size_mib(dsn: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        return float(await conn.fetchval("SELECT pg_database_size(current_database())")) / 2**20
    finally:
        await conn.close()


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=fh, env=env, cwd=ROOT, start_new_session=True)


def calibrate(port: int, settings: Settings, sensors: list[tuple[str, str]], n: int, workers: int,
              workdir: Path) -> float:
    t0, t1, _ = bi.run_ingest(port, settings, sensors, n, workers, workdir / "calibrate.log", True)
    return n / (t1 - t0)


async def soak(args: argparse.Namespace, port: int, settings: Settings, sensors: list[tuple[str, str]],
               rate: float, workdir: Path) -> list[dict[str, float]]:
    metrics_port = bi.free_port()
    http_port = bi.free_port()
    env = dict(os.environ, CITYPARK_DATABASE_URL=settings.database_url, CITYPARK_MQTT_URL=f"mqtt://127.0.0.1:{port}",
               CITYPARK_MQTT_TOPIC_ROOT=bi.TOPIC_ROOT, CITYPARK_MQTT_SHARE_GROUP=f"soak{secrets.token_hex(3)}",
               CITYPARK_RATE_LIMIT="0")
    cli = [sys.executable, "-c", "from app.cli import main; main()"]
    ingest = start([*cli, "ingest", "--workers", str(args.workers), "--metrics-port", str(metrics_port),
                    "--client-id", f"soak-{secrets.token_hex(3)}"], env, workdir / "ingest.log")
    api = start([*cli, "serve", "--port", str(http_port)], env, workdir / "serve.log")
    ctx = mp.get_context("spawn")
    stop_pub, published = ctx.Event(), ctx.Value("q", 0)
    pub = ctx.Process(target=paced_publisher, args=(port, sensors, rate, stop_pub, published))
    try:
        bi.wait_for(lambda: (workdir / "ingest.log").read_text().count("subscribed: ") >= args.workers, 60,
                    "ingest did not subscribe")
        bi.wait_for(lambda: bi._busy(http_port), 60, "API did not start")
        pub.start()
        procs = {"publisher": psutil.Process(pub.pid), **process_tree("ingest", psutil.Process(ingest.pid)),
                 **process_tree("api", psutil.Process(api.pid)), "soak": psutil.Process()}
        return await _sample(args, procs, published, settings, metrics_port, http_port)
    finally:
        stop_pub.set()
        pub.join(timeout=30)
        for proc in (api, ingest):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


async def _sample(args: argparse.Namespace, procs: dict[str, psutil.Process], published: mp.Value,  # type: ignore[valid-type]
                  settings: Settings, metrics_port: int, http_port: int) -> list[dict[str, float]]:
    ports = [metrics_port + i for i in range(args.workers)]
    reads, stop = Reads(), asyncio.Event()
    tasks = [asyncio.create_task(reader(f"http://127.0.0.1:{http_port}", reads, stop)) for _ in range(args.readers)]
    rows: list[dict[str, float]] = []
    start = time.monotonic()
    header = False
    try:
        while time.monotonic() - start < args.minutes * 60:
            await asyncio.sleep(args.sample_s)  # the sampling interval
            committed = await asyncio.to_thread(bi.metric_sum, ports, "citypark_ingest_events_total") or 0.0
            lag = await asyncio.to_thread(gauge_max, ports, "citypark_ingest_lag_seconds")
            n, errors, lat = reads.take()
            row = {"t_s": time.monotonic() - start, "published": float(published.value), "committed": committed,
                   "backlog": float(published.value) - committed, "lag_s": lag,
                   "db_mib": await db_size_mib(settings.asyncpg_dsn), "reads_per_s": n / args.sample_s,
                   "read_p50_ms": statistics.median(lat) if lat else float("nan"),
                   "read_p99_ms": float(np.percentile(lat, 99)) if lat else float("nan"), "read_errors": errors,
                   **{f"rss_{k}": v for k, v in rss_by_process(procs).items()}}
            rows.append(row)
            if not header:
                print(" ".join(f"{k:>12}" for k in row), flush=True)
                header = True
            print(" ".join(f"{v:12.1f}" for v in row.values()), flush=True)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return rows


def slope_per_10min(rows: list[dict[str, float]], key: str) -> float:
    half = rows[len(rows) // 2:]
    if len(half) < 2:
        return float("nan")
    t, v = np.array([r["t_s"] for r in half]), np.array([r[key] for r in half])
    return float(np.polyfit(t, v, 1)[0] * 600)


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
    axes[0].plot(t, [r["lag_s"] for r in rows], label="ingest lag (s)")
    axes[0].plot(t, [r["backlog"] / 1000 for r in rows], label="backlog (k events)")
    for key in [k for k in rows[0] if k.startswith("rss_")]:
        axes[1].plot(t, [r[key] for r in rows], label=key[4:])
    axes[2].plot(t, [r["db_mib"] for r in rows], label="database size (MiB)")
    axes[3].plot(t, [r["reads_per_s"] for r in rows], label="reads/s")
    axes[3].plot(t, [r["read_p99_ms"] for r in rows], label="read p99 (ms)")
    axes[1].set_ylabel("RSS (MiB)")
    axes[-1].set_xlabel("minutes")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--spaces", type=int, default=20_000)
    parser.add_argument("--load", type=float, default=0.8, help="share of the measured maximum ingest rate")
    parser.add_argument("--calibrate-events", type=int, default=30_000)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--png", type=Path, default=ROOT / "test-output" / "soak.png")
    parser.add_argument("--database-url", default=os.environ.get(
        "CITYPARK_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--database-name", default=f"citypark_soak_{os.getpid()}", help="scratch database (dropped)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="citypark-soak-"))
    os.chmod(workdir, 0o777)
    broker, port = bi.start_broker(workdir)
    settings = Settings(database_url=f"{args.database_url.rstrip('/')}/{args.database_name}")
    try:
        sensors = asyncio.run(bi.prepare_database(settings, args.spaces))
        peak = calibrate(port, settings, sensors, args.calibrate_events, args.workers, workdir)
        rate = args.load * peak
        print(f"soak — {len(sensors)} sensors, {args.workers} ingest worker(s), {args.readers} readers, "
              f"{os.cpu_count()} cores (shared: figures are noisy); measured maximum {peak:,.0f} events/s, "
              f"soaking at {args.load:.0%} = {rate:,.0f} events/s for {args.minutes:g} min", flush=True)
        rows = asyncio.run(soak(args, port, settings, sensors, rate, workdir))
        summarise(rows, args, rate)
        args.png.parent.mkdir(parents=True, exist_ok=True)
        plot(rows, args.png, f"citypark soak: {rate:,.0f} events/s ({args.load:.0%} of {peak:,.0f}), "
                             f"{args.readers} readers, {args.minutes:g} min")
        print(f"plot: {args.png}")
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)
        asyncio.run(database.drop_database(settings))
        shutil.rmtree(workdir, ignore_errors=True)


def summarise(rows: list[dict[str, float]], args: argparse.Namespace, rate: float) -> None:
    if not rows:
        print("no samples (run longer than --sample-s)")
        return
    achieved = rows[-1]["committed"] / rows[-1]["t_s"]
    print(f"committed {rows[-1]['committed']:,.0f} events, {achieved:,.0f} events/s "
          f"({achieved / rate:.2f} of the target rate); backlog max {max(r['backlog'] for r in rows):,.0f}, "
          f"last {rows[-1]['backlog']:,.0f}; lag max {max(r['lag_s'] for r in rows):.1f} s; "
          f"read errors {sum(r['read_errors'] for r in rows):.0f}")
    print("second-half slopes (per 10 min): backlog {:+,.0f} events; ".format(slope_per_10min(rows, "backlog"))
          + "; ".join(f"{k[4:]} {slope_per_10min(rows, k):+.1f} MiB" for k in rows[0] if k.startswith("rss_"))
          + f"; database {slope_per_10min(rows, 'db_mib'):+.0f} MiB")


if __name__ == "__main__":
    main()
