"""LoRaWAN uplink ingest vs citypark's JSON ingest, on the same broker in the same run.

    .venv/bin/python bench/bench_lorawan.py [--events 60000] [--spaces 20000] [--workers 1]

Reuses bench/bench_ingest.py's machinery (private Mosquitto, seeded scratch databases, the
`citypark ingest` command timed from its reconnection to its last commit over a backlog the
broker holds). Every sensor of the bench database becomes a LoRaWAN device (DevEUI, one of
the three binary models in turn); then the same number of distinct occupancy events is
ingested twice, each run on its own copy of the database:

(a) as citypark JSON on ``{root}/{operator}/sensors/{id}/occupancy`` (today's path), and
(b) as ChirpStack v4 JSON uplinks (``application/…/device/{dev_eui}/event/up``: base64 frame,
    DevEUI lookup, vendor decoder, frame counter as seq, the device report written per batch),

and prints both rates and (b)/(a); the target is ≥ 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_ingest as bi  # noqa: E402

from app.core import migrate as database  # noqa: E402
from app.core.settings import Settings  # noqa: E402

MODELS = ("bosch-tps110", "nwave-nps310", "netvox-r719a")
APP = "bench-parking"


def frame(model: str, occupied: bool) -> tuple[int, bytes]:
    """A status frame as the vendor lays it out (see sensors/lorawan/decoders/)."""
    if model == "netvox-r719a":
        return 6, bytes([0x01, 0x59, 0x01, 0x24, int(occupied), 0, 0, 0, 0, 0, 0])
    return 1, bytes([int(occupied)])


def uplink_publisher(port: int, devices: list[tuple[str, str]], n: int, started: mp.Value) -> None:  # type: ignore[valid-type]
    """Like bench_ingest.publisher, with the same events as ChirpStack uplinks."""
    base = datetime.now(UTC) - timedelta(seconds=30)
    msgs = []
    for i in range(n):
        dev_eui, model = devices[i % len(devices)]
        seq = i // len(devices)
        f_port, data = frame(model, (i * 7 + seq) % 3 == 0)
        body = {"deduplicationId": f"{dev_eui}-{seq}", "time": (base + timedelta(seconds=seq)).isoformat(),
                "deviceInfo": {"applicationId": APP, "deviceName": dev_eui, "devEui": dev_eui},
                "devAddr": dev_eui[-8:], "dr": 5, "fCnt": seq, "fPort": f_port,
                "data": base64.b64encode(data).decode(),
                "rxInfo": [{"gatewayId": "a840411e12340000", "rssi": -97, "snr": 7.5, "crcStatus": "CRC_OK"}]}
        msgs.append((f"application/{APP}/device/{dev_eui}/event/up", orjson.dumps(body)))
    c = bi.client(port)
    c.loop_start()
    started.value = time.time()
    window: deque = deque()  # type: ignore[type-arg]
    for topic, payload in msgs:
        window.append(c.publish(topic, payload, qos=1))
        if len(window) > 30_000:
            window.popleft().wait_for_publish(timeout=600)
    for info in window:
        info.wait_for_publish(timeout=600)
    c.disconnect()
    c.loop_stop()


async def make_devices(settings: Settings) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute("""
            UPDATE sensors s SET dev_eui = lpad(to_hex(v.n), 16, '0'), sensor_model = ($1::text[])[1 + v.n % 3]
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM sensors WHERE space_id IS NOT NULL) v
            WHERE s.id = v.id""", list(MODELS))
        await conn.execute("ANALYZE sensors")
        rows = await conn.fetch("SELECT dev_eui, sensor_model FROM sensors WHERE space_id IS NOT NULL ORDER BY id")
    finally:
        await conn.close()
    return [(r["dev_eui"], r["sensor_model"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--spaces", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get(
        "CITYPARK_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    n = args.events
    workdir = Path(tempfile.mkdtemp(prefix="citypark-bench-lorawan-"))
    os.chmod(workdir, 0o777)
    broker, port = bi.start_broker(workdir)
    template = Settings(database_url=f"{args.database_url.rstrip('/')}/citypark_bench_lw_tpl_{os.getpid()}")
    made = [template]
    try:
        sensors = asyncio.run(bi.prepare_database(template, args.spaces))
        devices = asyncio.run(make_devices(template))
        print(f"broker 127.0.0.1:{port}, {len(sensors)} sensors (all LoRaWAN devices too), {n} events per run",
              flush=True)
        rates = {}
        cpu: dict[str, dict[str, float]] = {}
        for name, publish, who in (("json", None, sensors), ("uplink", uplink_publisher, devices)):
            settings = asyncio.run(bi.copy_database(template, f"citypark_bench_lw_{os.getpid()}_{name}"))
            made.append(settings)
            cpu[name] = {}
            t0, t1, peak = bi.run_ingest(port, settings, who, n, args.workers, workdir / f"ingest-{name}.log",
                                         True, publish=publish, cpu_out=cpu[name])
            rates[name] = n / (t1 - t0)
            rows, distinct = asyncio.run(bi.history_check(settings))
            print(f"({'a' if name == 'json' else 'b'}) {name:6} ingest, {args.workers} worker(s): "
                  f"{rates[name]:9,.0f} events/s ({t1 - t0:.2f} s)  peak RSS {peak / 2**20:.0f} MiB  "
                  f"history: {rows} rows, {distinct} distinct", flush=True)
            print(f"    CPU per event: ingest {cpu[name]['client'] / n * 1e6:.0f} µs + PostgreSQL "
                  f"{cpu[name]['database'] / n * 1e6:.0f} µs", flush=True)
        print(f"ratio (b)/(a) = {rates['uplink'] / rates['json']:.2f}  (target >= 0.8); CPU ratio "
              f"(ingest + PostgreSQL, json/uplink) = "
              f"{sum(cpu['json'].values()) / max(sum(cpu['uplink'].values()), 1e-9):.2f}  "
              f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)
        for settings in reversed(made):
            asyncio.run(database.drop_database(settings))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
