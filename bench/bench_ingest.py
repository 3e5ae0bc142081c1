"""Ingest benchmark: a bare paho subscriber vs `citypark ingest` on the same broker and stream.

    .venv/bin/python bench/bench_ingest.py [--events 200000] [--workers 1 2] [--scenario inorder storm]

Starts a private Mosquitto (deploy/mosquitto/mosquitto.local.conf's limits) on a free port and
a seeded scratch database on the local PostgreSQL (the demo district plus ``--spaces``
synthetic sensor-equipped spaces). A separate publisher process sends ``--events`` distinct QoS 1
occupancy events spread round-robin over all the sensors. By default each consumer's
persistent session is away while the stream is published, so the broker holds a backlog and the
consumer's own speed is measured (``--live`` consumes while publishing instead; then the
publisher's speed bounds both). Measured:

(a) a bare paho subscriber (QoS 1, parses each JSON payload, does nothing else) from its first
    to its last message, and
(b) `citypark ingest --workers N` from its (re)connection to its last commit (the workers' event
    counters, which move after commit, polled every 0.1 s),

then prints events/s of both, the ratio (b)/(a), the workers' peak RSS and a check that
history holds every event exactly once, and the CPU seconds per event of (a), of (b)'s processes
and of (b)'s PostgreSQL backends: on a shared, loaded machine the rates swing with the load,
CPU per event much less.

Scenarios (``--scenario``, default both, each with its own bare-paho baseline in the same run):

- ``inorder``: ``--events`` distinct events visiting every sensor round-robin, in time order,
  each delivered once (a calm city).
- ``storm``: ``--storm-sensors`` (5,000) sensors each sending many events, the whole stream
  shuffled (out of order) with ``--storm-duplicates`` (5 %) of it redelivered, as a broker
  reconnect or a worker restart produces: hot rows hit several times per batch, late events,
  duplicates inside a batch and across batches. ``--events`` messages in all.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import multiprocessing as mp
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.ext.asyncio import AsyncSession

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core import migrate as database  # noqa: E402
from app.core.db import create_engine  # noqa: E402
from app.core.settings import Settings  # noqa: E402
from app.inventory import seed as seed_service  # noqa: E402

TOPIC_ROOT = "bench"
STORM_DUPLICATES = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = [ln for ln in (ROOT / "deploy/mosquitto/mosquitto.local.conf").read_text().splitlines()
            if not ln.startswith(("listener", "persistence_location"))]
    conf += [f"listener {port} 127.0.0.1", f"persistence_location {workdir}/"]
    (workdir / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(workdir / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 10, "mosquitto did not start")
    return proc, port


def client(port: int, client_id: str = "", persistent: bool = False) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, keepalive=60, clean_start=not persistent, properties=props)
    return c


def publisher(port: int, sensors: list[tuple[str, str]], n: int, started: mp.Value) -> None:  # type: ignore[valid-type]
    """Pre-encodes ``n`` distinct events, then publishes them as fast as QoS 1 allows."""
    # Fresh events, as a live city sends them: newer than the seeded state, never in the future.
    base = datetime.now(UTC) - timedelta(seconds=30)
    msgs = []
    for i in range(n):
        sensor_id, operator_id = sensors[i % len(sensors)]
        seq = i // len(sensors)
        body = {"occupied": (i * 7 + seq) % 3 == 0, "observed_at": (base + timedelta(seconds=seq)).isoformat(),
                "seq": seq}
        msgs.append((f"{TOPIC_ROOT}/{operator_id}/sensors/{sensor_id}/occupancy", orjson.dumps(body)))
    _publish(port, msgs, started)


def storm_stream(sensors: list[tuple[str, str]], n: int, dup_share: float,
                 seed: int = 13) -> tuple[list[tuple[str, bytes]], int]:
    """``n`` messages over ``sensors``: distinct events shuffled, ``dup_share`` of them sent twice.

    Returns the messages and the number of distinct events among them.
    """
    rng = random.Random(seed)
    distinct = round(n / (1 + dup_share))
    per_sensor = -(-distinct // len(sensors))
    base = datetime.now(UTC) - timedelta(seconds=per_sensor + 60)  # all in the past, never ahead
    msgs = []
    for i in range(distinct):
        sensor_id, operator_id = sensors[i % len(sensors)]
        seq = i // len(sensors)
        body = {"occupied": rng.random() < 0.5, "observed_at": (base + timedelta(seconds=seq)).isoformat(),
                "seq": seq}
        msgs.append((f"{TOPIC_ROOT}/{operator_id}/sensors/{sensor_id}/occupancy", orjson.dumps(body)))
    msgs += rng.choices(msgs, k=n - distinct)  # redelivered copies, byte for byte
    rng.shuffle(msgs)
    return msgs, distinct


def storm_publisher(port: int, sensors: list[tuple[str, str]], n: int, started: mp.Value,  # type: ignore[valid-type]
                    dup_share: float = STORM_DUPLICATES) -> None:
    """Publishes the storm stream (see :func:`storm_stream`); ``sensors`` is the storm's subset."""
    msgs, _ = storm_stream(sensors, n, dup_share)
    _publish(port, msgs, started)


def _publish(port: int, msgs: list[tuple[str, bytes]], started: mp.Value) -> None:  # type: ignore[valid-type]
    c = client(port)
    c.loop_start()
    started.value = time.time()
    window: deque[mqtt.MQTTMessageInfo] = deque()
    for topic, payload in msgs:
        window.append(c.publish(topic, payload, qos=1))
        if len(window) > 30_000:  # packet ids are 16 bits: never have 65,535 outstanding
            window.popleft().wait_for_publish(timeout=600)
    for info in window:
        info.wait_for_publish(timeout=600)
    c.disconnect()
    c.loop_stop()


def bare_subscriber(port: int, n: int, ready: mp.Event, go: mp.Event, out: mp.Queue,  # type: ignore[valid-type]
                    backlog: bool) -> None:
    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        orjson.loads(msg.payload)
        state["n"] += 1
        if state["n"] == 1:
            state["first"] = time.time()
            state["cpu0"] = time.process_time()
        if state["n"] >= n:
            state["last"] = time.time()
            state["cpu1"] = time.process_time()

    client_id = f"bench-bare-{secrets.token_hex(3)}"
    c = client(port, client_id, persistent=True)
    c.on_message = on_message
    c.subscribe(f"{TOPIC_ROOT}/#", qos=1)
    c.loop_start()
    time.sleep(0.5)  # the SUBACK: a benchmark setup step, not a result wait
    if backlog:  # away while the stream is published; the broker queues it for our session
        c.disconnect()
        c.loop_stop()
        ready.set()
        go.wait(900)
        c = client(port, client_id, persistent=True)
        c.on_message = on_message
        c.loop_start()
    ready.set()
    while not state["last"]:
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    out.put((state["first"], state["last"], psutil.Process().memory_info().rss, state["cpu1"] - state["cpu0"]))


def run_bare(port: int, sensors: list[tuple[str, str]], n: int, backlog: bool,
             publish: object = None, cpu_out: dict[str, float] | None = None) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    ready, go, out, started = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Value("d", 0.0)
    sub = ctx.Process(target=bare_subscriber, args=(port, n, ready, go, out, backlog))
    sub.start()
    ready.wait(30)
    pub = ctx.Process(target=publish or publisher, args=(port, sensors, n, started))
    pub.start()
    if backlog:
        pub.join()
        go.set()
    first, last, _rss, cpu = out.get(timeout=900)
    pub.join()
    sub.join()
    if cpu_out is not None:
        cpu_out["client"] = cpu
    return (first if backlog else started.value), last


def metric_sum(ports: list[int], name: str) -> float | None:
    """Sum of a metric over the workers' /metrics; None when a worker's port does not answer."""
    total = 0.0
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except (OSError, http.client.HTTPException):
            return None
        total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith(name + "{"))
    return total


def run_ingest(port: int, settings: Settings, sensors: list[tuple[str, str]], n: int, workers: int,
               log: Path, backlog: bool, publish: object = None,
               cpu_out: dict[str, float] | None = None) -> tuple[float, float, int]:
    """``publish``: the publisher process's target (default :func:`publisher`, citypark JSON).

    ``cpu_out`` gets the CPU seconds the ingest processes (``client``) and their PostgreSQL
    backends (``database``) spent from the (re)connection to the last commit: unlike rates,
    CPU per event barely depends on what else the machine runs."""
    metrics_port = free_port()
    while any(_busy(metrics_port + i) for i in range(workers)):
        metrics_port = free_port()
    env = dict(os.environ, CITYPARK_DATABASE_URL=settings.database_url, CITYPARK_MQTT_URL=f"mqtt://127.0.0.1:{port}",
               CITYPARK_MQTT_TOPIC_ROOT=TOPIC_ROOT, CITYPARK_MQTT_SHARE_GROUP=f"bench{secrets.token_hex(3)}")
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "ingest", "--workers", str(workers),
           "--metrics-port", str(metrics_port), "--client-id", f"bench-{secrets.token_hex(3)}"]
    proc = _start(cmd, env, log)
    ports = [metrics_port + i for i in range(workers)]
    try:
        wait_for(lambda: log.read_text().count("subscribed: ") >= workers, 60, "ingest did not subscribe")
        ctx = mp.get_context("spawn")
        started = ctx.Value("d", 0.0)
        if backlog:  # stop (sessions persist), publish everything, start again under the same ids
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        pub = ctx.Process(target=publish or publisher, args=(port, sensors, n, started))
        pub.start()
        if backlog:
            pub.join()
            mark = log.stat().st_size
            proc = _start(cmd, env, log)
            wait_for(lambda: "connected as" in log.read_text()[mark:], 60, "ingest did not reconnect")
            started.value = _log_time(log.read_text()[mark:], "connected as")
        peak = 0
        tree = psutil.Process(proc.pid)
        cpu0 = _cpu(tree), _db_cpu(settings)
        while progress(ports, settings) < n:
            peak = max(peak, _rss(tree, workers))
            if proc.poll() is not None:
                raise RuntimeError(f"ingest exited: {log.read_text()[-2000:]}")
            time.sleep(0.1)  # sampling interval of the progress/RSS probe
        last = time.time()
        if cpu_out is not None:
            cpu_out["client"] = _cpu(tree) - cpu0[0]
            cpu_out["database"] = sum(t - cpu0[1].get(pid, 0.0) for pid, t in _db_cpu(settings).items())
        batches = metric_sum(ports, "citypark_ingest_batch_size_count") or 0
        busy = metric_sum(ports, "citypark_ingest_batch_seconds_sum") or 0
        print(f"    {batches:.0f} batches, mean {n / max(batches, 1):.0f} events, "
              f"{busy / max(batches, 1) * 1000:.0f} ms mean write+commit", flush=True)
        pub.join()
        return started.value, last, peak
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=fh, env=env, cwd=ROOT)


def _log_time(text: str, needle: str) -> float:
    """The wall-clock time of the first log line containing ``needle`` (logging's asctime)."""
    line = next(ln for ln in text.splitlines() if needle in ln)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def progress(ports: list[int], settings: Settings) -> float:
    """Committed events: the workers' counters (cheap), or the table when a port is taken."""
    done = metric_sum(ports, "citypark_ingest_events_total")
    return committed(settings) if done is None else done


def committed(settings: Settings) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM occupancy_events"))
        finally:
            await conn.close()

    return asyncio.run(count())


def _cpu(tree: psutil.Process) -> float:
    """User + system CPU seconds of a process and all its descendants."""
    total = 0.0
    for p in [tree, *tree.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _db_cpu(settings: Settings) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to the bench database (same machine)."""
    async def pids() -> list[int]:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            return [r[0] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        finally:
            await conn.close()

    out = {}
    for pid in asyncio.run(pids()):
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _rss(tree: psutil.Process, workers: int) -> int:
    """Peak RSS of one worker (the biggest, when there are several): its process and its writer."""
    procs = [tree] if workers == 1 else tree.children()
    try:
        return max((p.memory_info().rss + sum(c.memory_info().rss for c in p.children()) for p in procs),
                   default=0)
    except psutil.Error:
        return 0


async def prepare_database(base: Settings, spaces: int) -> list[tuple[str, str]]:
    await database.migrate(base)
    engine = create_engine(base, pool_size=1)
    async with AsyncSession(engine) as session, session.begin():
        await seed_service.seed_demo(session, name="tiedong")
    await engine.dispose()
    conn = await asyncpg.connect(base.asyncpg_dsn)
    try:
        if spaces:
            await seed_service.seed_synthetic(conn, n=spaces, seed=1)
        # The seeded state an hour old: every stream's events (the storm's reach a minute or two
        # back) are newer than it, as a live city's are.
        await conn.execute("UPDATE space_state SET observed_at = observed_at - interval '1 hour', "
                           "since = since - interval '1 hour', last_seen = last_seen - interval '1 hour'")
        await conn.execute("VACUUM ANALYZE")  # as autovacuum would have by now
        rows = await conn.fetch("SELECT id, operator_id FROM sensors WHERE space_id IS NOT NULL ORDER BY id")
    finally:
        await conn.close()
    return [(r["id"], r["operator_id"]) for r in rows]


async def copy_database(template: Settings, name: str) -> Settings:
    settings = Settings(database_url=template.database_url.rsplit("/", 1)[0] + "/" + name)
    await database.drop_database(settings)
    await database.create_database(settings, template=template.database_name)
    return settings


async def history_check(settings: Settings) -> tuple[int, int]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        row = await conn.fetchrow("SELECT count(*) AS n, count(DISTINCT (sensor_id, observed_at, seq)) AS d "
                                  "FROM occupancy_events")
        return int(row["n"]), int(row["d"])
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--live", action="store_true",
                        help="consume while publishing (the publisher's speed bounds both); by default "
                             "the consumer is away while the stream is published and drains the backlog")
    parser.add_argument("--spaces", type=int, default=100_000,
                        help="synthetic spaces (with sensors) added to the demo district; the events "
                             "spread over all sensors, as a city's would (0 = the demo's 2,097 only)")
    parser.add_argument("--database-url", default=os.environ.get(
        "CITYPARK_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--scenario", nargs="+", choices=("inorder", "storm"), default=["inorder", "storm"])
    parser.add_argument("--storm-sensors", type=int, default=5_000)
    parser.add_argument("--storm-duplicates", type=float, default=0.05,
                        help="share of the storm stream redelivered (0.05 = 5 %%)")
    args = parser.parse_args()
    n = args.events
    workdir = Path(tempfile.mkdtemp(prefix="citypark-bench-"))
    os.chmod(workdir, 0o777)
    broker, port = start_broker(workdir)
    template = Settings(database_url=f"{args.database_url.rstrip('/')}/citypark_bench_tpl_{os.getpid()}")
    made = [template]
    try:
        sensors = asyncio.run(prepare_database(template, args.spaces))
        print(f"broker 127.0.0.1:{port}, {len(sensors)} sensors, {n} events per run", flush=True)
        for scenario in args.scenario:
            if scenario == "storm":
                used = random.Random(5).sample(sensors, min(args.storm_sensors, len(sensors)))
                distinct = storm_stream(used, n, args.storm_duplicates)[1]
                publish: object = functools.partial(storm_publisher, dup_share=args.storm_duplicates)
                print(f"[storm] {len(used)} sensors, {n} messages: {distinct} distinct events shuffled, "
                      f"{n - distinct} redelivered", flush=True)
            else:
                used, distinct, publish = sensors, n, publisher
                print(f"[inorder] {len(used)} sensors round-robin, {n} distinct events in order", flush=True)
            bare_cpu: dict[str, float] = {}
            t0, t1 = run_bare(port, used, n, not args.live, publish, bare_cpu)
            bare = n / (t1 - t0)
            print(f"(a) bare paho subscriber:  {bare:9,.0f} events/s  ({t1 - t0:.2f} s)  "
                  f"CPU {bare_cpu['client'] / n * 1e6:.0f} µs/event", flush=True)
            for workers in args.workers:
                settings = asyncio.run(copy_database(
                    template, f"citypark_bench_{os.getpid()}_{scenario}_{workers}"))
                made.append(settings)
                cpu: dict[str, float] = {}
                t0, t1, peak = run_ingest(port, settings, used, n, workers,
                                          workdir / f"ingest-{scenario}-{workers}.log", not args.live, publish, cpu)
                rate = n / (t1 - t0)
                rows, unique = asyncio.run(history_check(settings))
                ok = "ok" if rows == unique == distinct else f"EXPECTED {distinct}"
                print(f"(b) [{scenario}] citypark ingest, {workers} worker{'s' if workers > 1 else ' '}: "
                      f"{rate:9,.0f} events/s  ({t1 - t0:.2f} s)  ratio (b)/(a) = {rate / bare:.2f}  "
                      f"peak RSS per worker = {peak / 2**20:.0f} MiB  history: {rows} rows, {unique} distinct "
                      f"({ok})", flush=True)
                print(f"    CPU per event: ingest {cpu['client'] / n * 1e6:.0f} µs + PostgreSQL "
                      f"{cpu['database'] / n * 1e6:.0f} µs; CPU ratio bare/ingest = "
                      f"{bare_cpu['client'] / max(cpu['client'], 1e-9):.2f}", flush=True)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)
        for settings in reversed(made):
            asyncio.run(database.drop_database(settings))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
