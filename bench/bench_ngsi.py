"""NGSI-LD benchmark: the near query against GET /v1/spaces/free, and notification fan-out.

    .venv/bin/python bench/bench_ngsi.py [--spaces 20000] [--requests 400] [--subscriptions 1000]
                                         [--rate 1000] [--seconds 20] [--events 60000]

One scratch database (the demo district plus ``--spaces`` synthetic sensor-equipped spaces,
bench_ingest's preparation), one private Mosquitto, all in this run:

(1) latency: `citypark serve` (1 worker) answers, sequentially over one keep-alive connection and
    interleaved (one of each in turn: both see the same load), ``--requests`` random points each
    of ``GET /v1/spaces/free?lat&lon&limit=10&radius_m=500``
    and of its NGSI-LD twin ``GET /ngsi-ld/v1/entities?type=ParkingSpot&q=status=="free"&
    georel=near;maxDistance==500&geometry=Point&coordinates=[lon,lat]&limit=10``; prints both
    p50s and the ratio NGSI-LD / free (target ≤ 2).
(2) ingest rate without subscriptions: `citypark ingest` drains a backlog of ``--events``
    (bench_ingest.run_ingest), events/s.
(3) fan-out: ``--subscriptions`` subscriptions (ParkingSpot status, each a ``near`` geoQ of
    150 m around a random spot, keyValues) to a local receiver process, `citypark notify`
    running; a publisher sends ``--rate`` state changes per second for ``--seconds`` through
    ingest; the receiver records, per notified entity, its arrival minus the event's
    ``observed_at`` (the publisher stamps the send time). Prints notifications, entities, lag
    p50/p99 (target p99 ≤ 2 s).
(4) ingest rate again, the notifier and the subscriptions still active: prints it and the
    ratio (4)/(2) (target ≥ 0.9).
(5) ingest rate once more with the notifier stopped, and (4) over the mean of (2) and (5): the
    load of a shared machine moves between runs minutes apart.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing as mp
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_ingest  # noqa: E402

from app.core import migrate as database  # noqa: E402
from app.core.settings import Settings  # noqa: E402


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def serve(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CITYPARK_DATABASE_URL=settings.database_url, CITYPARK_RATE_LIMIT="0")
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve", "--host",
                                 "127.0.0.1", "--port", str(port), "--workers", "1"], stdout=fh, stderr=fh,
                                env=env, cwd=ROOT)


def wait_http(port: int, path: str = "/readyz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)  # the server is starting
    raise RuntimeError(f"no answer on :{port}{path}")


def latencies(port: int, paths: list[str]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for path in paths:
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        out.append(time.perf_counter() - start)
        assert response.status == 200, (path, response.status)
    return out


async def points(settings: Settings, n: int) -> list[tuple[float, float]]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch("SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat FROM spaces ORDER BY random() LIMIT $1",
                                n)
    finally:
        await conn.close()
    return [(r["lon"], r["lat"]) for r in rows]


async def randomize(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute("UPDATE space_state SET occupied = (random() < 0.4), since = now() - interval '1 min', "
                           "observed_at = now() - interval '1 min', last_seen = now()")
    finally:
        await conn.close()


# --- the receiver and the live publisher (processes of their own) ------------------------------


def receiver(port: int, out: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    lags: list[float] = []
    arrivals: list[float] = []
    counts = {"notifications": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = orjson.loads(await reader.readexactly(length))
                now = time.time()
                counts["notifications"] += 1
                for entity in body["data"]:
                    if "timeInstant" in entity:
                        lags.append(now - datetime.fromisoformat(entity["timeInstant"]).timestamp())
                        arrivals.append(now)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        while not stop.is_set():
            await asyncio.sleep(0.2)
        server.close()
        out.put((counts["notifications"], lags, arrivals))

    asyncio.run(main())


def live_publisher(port: int, sensors: list[tuple[str, str]], rate: int, seconds: float) -> None:
    c = bench_ingest.client(port)
    c.loop_start()
    state: dict[str, bool] = {}
    start = time.monotonic()
    sent = 0
    rng = random.Random(3)
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            sensor_id, operator_id = rng.choice(sensors)
            state[sensor_id] = not state.get(sensor_id, False)
            body = {"occupied": state[sensor_id], "observed_at": datetime.now(UTC).isoformat()}
            topic = f"{bench_ingest.TOPIC_ROOT}/{operator_id}/sensors/{sensor_id}/occupancy"
            c.publish(topic, orjson.dumps(body), qos=1)
            sent += 1
        time.sleep(0.005)  # pacing to the rate
    c.disconnect()
    c.loop_stop()


async def subscribe(settings: Settings, n: int, receiver_port: int) -> None:
    centres = await points(settings, n)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = []
        for i, (lon, lat) in enumerate(centres):
            spec = {"type": "Subscription", "entities": [{"type": "ParkingSpot"}], "watchedAttributes": ["status"],
                    "geoQ": {"georel": "near;maxDistance==150", "geometry": "Point", "coordinates": [lon, lat]},
                    "notification": {"endpoint": {"uri": f"http://127.0.0.1:{receiver_port}/n",
                                                  "accept": "application/json"}, "format": "keyValues"}}
            rows.append((f"urn:ngsi-ld:Subscription:bench-{i}", "admin", orjson.dumps(spec).decode(),
                         spec["notification"]["endpoint"]["uri"]))  # type: ignore[index]
        await conn.executemany(
            "INSERT INTO ngsi_subscriptions (id, owner_key_id, spec, entity_types, watched_attributes, endpoint_uri) "
            "VALUES ($1, $2, $3::jsonb, ARRAY['ParkingSpot'], ARRAY['status'], $4)", rows)
    finally:
        await conn.close()


def ingest_rate(port: int, settings: Settings, sensors: list[tuple[str, str]], n: int, log: Path) -> float:
    started, last, _ = bench_ingest.run_ingest(port, settings, sensors, n, 1, log, backlog=True)
    return n / (last - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--parts", default="latency,fanout", help="latency (1), fanout (2-4), or both")
    parser.add_argument("--database-url", default=os.environ.get(
        "CITYPARK_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="citypark-bench-ngsi-"))
    os.chmod(workdir, 0o777)
    settings = Settings(database_url=f"{args.database_url.rstrip('/')}/citypark_bench_ngsi", rate_limit="0",
                        notify_allow="127.0.0.1")
    asyncio.run(database.drop_database(settings))
    sensors = asyncio.run(bench_ingest.prepare_database(settings, args.spaces))
    asyncio.run(randomize(settings))
    broker, mqtt_port = bench_ingest.start_broker(workdir)
    try:
        if "latency" in args.parts:
            _latency(settings, workdir, args.requests)
        if "fanout" in args.parts:
            base = ingest_rate(mqtt_port, settings, sensors, args.events, workdir / "ingest-a.log")
            print(f"(2) ingest without subscriptions: {base:,.0f} events/s", flush=True)
            _fanout(settings, workdir, mqtt_port, sensors, args, base)
    finally:
        broker.terminate()
        asyncio.run(database.drop_database(settings))


def _latency(settings: Settings, workdir: Path, n: int) -> None:
    port = bench_ingest.free_port()
    api = serve(settings, port, workdir / "serve.log")
    try:
        wait_http(port)
        centres = asyncio.run(points(settings, n))
        free = [f"/v1/spaces/free?lat={lat}&lon={lon}&limit=10&radius_m=500" for lon, lat in centres]
        ngsi = ["/ngsi-ld/v1/entities?type=ParkingSpot&q=" + quote('status=="free"') + "&georel="
                + quote("near;maxDistance==500") + f"&geometry=Point&coordinates={quote(f'[{lon},{lat}]')}"
                "&limit=10&options=keyValues" for lon, lat in centres]
        latencies(port, free[:50] + ngsi[:50])  # warm both
        # interleaved, one of each in turn, so that both see the same load of a shared machine
        both = latencies(port, [u for pair in zip(free, ngsi, strict=True) for u in pair])
        a, b = both[0::2], both[1::2]
        print(f"(1) p50 GET /v1/spaces/free {statistics.median(a) * 1000:.2f} ms, NGSI-LD near "
              f"{statistics.median(b) * 1000:.2f} ms: ratio {statistics.median(b) / statistics.median(a):.2f} "
              f"(target ≤ 2); p99 {p(a, 0.99) * 1000:.1f} / {p(b, 0.99) * 1000:.1f} ms", flush=True)
    finally:
        api.terminate()
        api.wait(timeout=30)


def _fanout(settings: Settings, workdir: Path, mqtt_port: int, sensors: list[tuple[str, str]],
            args: argparse.Namespace, base: float) -> None:
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    receiver_port = bench_ingest.free_port()
    rec = ctx.Process(target=receiver, args=(receiver_port, out, stop))
    rec.start()
    asyncio.run(subscribe(settings, args.subscriptions, receiver_port))
    env = dict(os.environ, CITYPARK_DATABASE_URL=settings.database_url, CITYPARK_NOTIFY_ALLOW="127.0.0.1")
    profile = os.environ.get("CITYPARK_BENCH_PROFILE_NOTIFY")  # a path: cProfile the notifier into it
    command = [sys.executable, "-c", "from app.cli import main; main()", "notify"]
    if profile:
        script = workdir / "notify_main.py"
        script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom app.cli import main\nmain()\n")
        command = [sys.executable, "-m", "cProfile", "-o", profile, str(script), "notify"]
    with (workdir / "notify.log").open("ab") as fh:
        notifier = subprocess.Popen(command, stdout=fh, stderr=fh, env=env, cwd=ROOT)
    try:
        # the notifier loads the subscriptions and primes its state of every entity first
        bench_ingest.wait_for(lambda: "ready: " in (workdir / "notify.log").read_text(), 120, "no notifier")
        ingest_env = dict(os.environ, CITYPARK_DATABASE_URL=settings.database_url,
                          CITYPARK_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}",
                          CITYPARK_MQTT_TOPIC_ROOT=bench_ingest.TOPIC_ROOT)
        command = [sys.executable, "-c", "from app.cli import main; main()", "ingest", "--workers", "1",
                   "--metrics-port", str(bench_ingest.free_port())]
        with (workdir / "ingest-live.log").open("ab") as fh:
            ingest = subprocess.Popen(command, stdout=fh, stderr=fh, env=ingest_env, cwd=ROOT)
        bench_ingest.wait_for(lambda: "subscribed: " in (workdir / "ingest-live.log").read_text(), 60, "no ingest")
        pub = ctx.Process(target=live_publisher, args=(mqtt_port, sensors, args.rate, args.seconds))
        pub.start()
        pub.join()
        time.sleep(5)  # let the last notifications land
        ingest.terminate()
        ingest.wait(timeout=60)
        if profile:
            notifier.send_signal(signal.SIGINT)
            notifier.wait(timeout=60)
        stop.set()
        count, lags, arrivals = out.get(timeout=60)
        rec.join()
        print(f"(3) {args.subscriptions} subscriptions, {args.rate} changes/s for {args.seconds:.0f} s: "
              f"{count:,} notifications, {len(lags):,} entities; lag p50 {p(lags, 0.5):.2f} s, "
              f"p99 {p(lags, 0.99):.2f} s (target ≤ 2 s)" if lags else "(3) no notifications", flush=True)
        if lags:  # a lag that grows over the run is a throughput deficit, a flat one a latency
            order = sorted(range(len(lags)), key=arrivals.__getitem__)
            thirds = [[lags[i] for i in order[k * len(order) // 3:(k + 1) * len(order) // 3]] for k in range(3)]
            print("    lag p50 by third of the run: " + ", ".join(f"{p(t, 0.5):.2f} s" for t in thirds if t),
                  flush=True)
        asyncio.run(randomize(settings))  # the backlog's events are newer again: they change state, notify
        again = ingest_rate(mqtt_port, settings, sensors, args.events, workdir / "ingest-b.log")
        print(f"(4) ingest with {args.subscriptions} subscriptions and the notifier running: {again:,.0f} events/s, "
              f"ratio {again / base:.2f} (target ≥ 0.9)", flush=True)
    finally:
        notifier.terminate()
        notifier.wait(timeout=30)
        if rec.is_alive():
            rec.terminate()
    # (5) without the notifier again: on a shared machine the load moves between (2) and (4)
    asyncio.run(randomize(settings))
    after = ingest_rate(mqtt_port, settings, sensors, args.events, workdir / "ingest-c.log")
    print(f"(5) ingest without the notifier again: {after:,.0f} events/s; (4) / mean of (2) and (5): "
          f"{again / ((base + after) / 2):.2f} (target ≥ 0.9)", flush=True)


if __name__ == "__main__":
    main()
