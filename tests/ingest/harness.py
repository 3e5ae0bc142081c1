"""Real parts for the ingest tests: a private Mosquitto, the `citypark ingest` process, a
publisher with known ground truth, and the checks every fault test ends with.

Nothing here imports ``sensors``: the worker runs as the real command in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from app.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.local.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # waiting for a port to open, bounded by the deadline
    raise TimeoutError(f"nothing listens on {port}")


class Broker:
    """A private Mosquitto with deploy/mosquitto/mosquitto.local.conf's limits on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        # Outside pytest's private tmp: mosquitto started as root drops to its own user.
        self.dir = Path(tempfile.mkdtemp(prefix="citypark-mqtt-"))
        os.chmod(self.dir, 0o777)
        lines = [ln for ln in LOCAL_CONF.read_text().splitlines()
                 if not ln.startswith(("listener", "persistence_location"))]
        lines += [f"listener {self.port} 127.0.0.1", f"persistence_location {self.dir}/",
                  "autosave_interval 1"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean stop writes the persistence file
            self.proc.wait(timeout=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Ingest:
    """`citypark ingest` as a subprocess of the test."""

    settings: Settings
    mqtt_url: str
    log_path: Path
    client_id: str = field(default_factory=lambda: f"test-ingest-{secrets.token_hex(4)}")
    group: str = field(default_factory=lambda: f"g{secrets.token_hex(4)}")
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "CITYPARK_DATABASE_URL": self.settings.database_url,
            "CITYPARK_MQTT_URL": self.mqtt_url,
            "CITYPARK_MQTT_TOPIC_ROOT": self.settings.mqtt_topic_root,
            "CITYPARK_MQTT_SHARE_GROUP": self.group,
            "CITYPARK_INGEST_FLUSH_MS": "50",
            "CITYPARK_INGEST_BATCH_SIZE": "500",
        })
        env.update(self.extra_env)
        return env

    def start(self) -> Ingest:
        self._mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "ingest",
             "--workers", str(self.workers), "--client-id", self.client_id, "--metrics-port", "0"],
            stdout=log, stderr=log, env=self.env(), cwd=ROOT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[self._mark:]

    def subscribed(self) -> bool:
        return self.log().count("subscribed: ") >= self.workers

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode if self.proc else None


class Publisher:
    """A QoS 1 publisher (MQTT 5) that can stream in a background thread."""

    def __init__(self, url: str) -> None:
        port = int(url.rsplit(":", 1)[1])
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.sent = 0
        self._thread: threading.Thread | None = None

    def publish(self, messages: Iterable[tuple[str, bytes]], pause_every: int = 0) -> None:
        window: list[mqtt.MQTTMessageInfo] = []
        for topic, payload in messages:
            window.append(self.client.publish(topic, payload, qos=1))
            self.sent += 1
            if (pause_every and self.sent % pause_every == 0) or len(window) > 20_000:
                window[-1].wait_for_publish(timeout=30)  # paces the stream; packet ids are 16 bits
                window.clear()
        for info in window:
            info.wait_for_publish(timeout=60)

    def stream(self, messages: list[tuple[str, bytes]], pause_every: int = 200) -> None:
        self._thread = threading.Thread(target=self.publish, args=(messages, pause_every), daemon=True)
        self._thread.start()

    def join(self, timeout: float = 60) -> None:
        if self._thread:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "publisher did not finish"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True)
class Truth:
    """Occupancy events whose storage the test can check exactly."""

    events: list[dict[str, Any]]  # sensor_id, space_id, occupied, observed_at, seq
    messages: list[tuple[str, bytes]]


async def sensors_of(settings: Settings, limit: int = 200) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetch(
            "SELECT id, operator_id, space_id FROM sensors WHERE space_id IS NOT NULL ORDER BY id LIMIT $1", limit)
    finally:
        await conn.close()


def make_truth(settings: Settings, sensors: list[asyncpg.Record], per_sensor: int, *, seed: int = 1,
               with_seq: bool = True) -> Truth:
    """``per_sensor`` events for each sensor, a minute apart, ending an hour ago, random states."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1, minutes=per_sensor)
    events, messages = [], []
    for i in range(per_sensor):
        for s in sensors:
            ev = {"sensor_id": s["id"], "space_id": s["space_id"], "occupied": rng.random() < 0.5,
                  "observed_at": start + timedelta(minutes=i, seconds=rng.randrange(60)),
                  "seq": i if with_seq else None}
            body = {"occupied": ev["occupied"], "observed_at": ev["observed_at"].isoformat()}
            if with_seq:
                body["seq"] = i
            events.append(ev)
            messages.append((f"{settings.mqtt_topic_root}/{s['operator_id']}/sensors/{s['id']}/occupancy",
                             json.dumps(body).encode()))
    return Truth(events, messages)


async def assert_history_and_state(settings: Settings, truth: Truth) -> None:
    """Every event exactly once in history; each space's state equals its newest event."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch("SELECT sensor_id, observed_at, seq, occupied, count(*) OVER "
                                "(PARTITION BY sensor_id, observed_at, seq) AS n FROM occupancy_events")
        stored = {(r["sensor_id"], r["observed_at"], r["seq"]): r["occupied"] for r in rows}
        assert all(r["n"] == 1 for r in rows)
        expected = {(e["sensor_id"], e["observed_at"], e["seq"]): e["occupied"] for e in truth.events}
        assert len(rows) == len(expected)
        assert stored == expected
        newest: dict[str, dict[str, Any]] = {}
        for e in truth.events:
            key = (e["observed_at"], e["seq"] if e["seq"] is not None else -1)
            cur = newest.get(e["space_id"])
            if cur is None or key > (cur["observed_at"], cur["seq"] if cur["seq"] is not None else -1):
                newest[e["space_id"]] = e
        states = await conn.fetch("SELECT space_id, occupied, observed_at, seq FROM space_state "
                                  "WHERE space_id = ANY($1::text[])", list(newest))
        got = {r["space_id"]: (r["occupied"], r["observed_at"], r["seq"]) for r in states}
        want = {k: (e["occupied"], e["observed_at"], e["seq"]) for k, e in newest.items()}
        assert got == want
    finally:
        await conn.close()


async def count_rows(settings: Settings, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster on a free port (run as ``postgres`` when we are root)."""

    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="citypark-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.BIN / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
