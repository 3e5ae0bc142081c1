"""Real processes for the multi-process tests: ``citypark serve --workers N`` on a free port,
a raw HTTP/1.1 connection whose serving worker process the test can name, a private Redis.

Which worker serves a connection is read from the kernel (psutil: the worker process that
owns the server end of the connection), so "spread over both processes" is a fact the test
checks, not a hope.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import orjson
import psutil

from app.core.settings import Settings
from tests.ingest.harness import PrivatePostgres, free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CITYPARK_DATABASE_URL": settings.database_url,
        "CITYPARK_MQTT_URL": settings.mqtt_url,
        "CITYPARK_MQTT_TOPIC_ROOT": settings.mqtt_topic_root,
        "CITYPARK_RATE_LIMIT": settings.rate_limit,
        "CITYPARK_DB_POOL_SIZE": "3",
    })
    env.update(extra)
    return env


@dataclass
class Serve:
    """``citypark serve --workers N`` as a subprocess of the test."""

    env: dict[str, str]
    log_path: Path
    workers: int = 2
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "serve",
             "--port", str(self.port), "--workers", str(self.workers)],
            stdout=log, stderr=log, env=self.env, cwd=ROOT, start_new_session=True)
        wait_port(self.port, timeout=60)
        return self

    def worker_pids(self) -> list[int]:
        """The worker processes: the children that serve the socket (not the resource tracker)."""
        assert self.proc is not None
        children = psutil.Process(self.proc.pid).children()
        return [c.pid for c in children if "resource_tracker" not in " ".join(c.cmdline())]

    def owner_of(self, client_port: int) -> int | None:
        """The worker pid holding the server end of the connection from ``client_port``."""
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(pid).net_connections("tcp"):
                    if c.laddr and c.laddr.port == self.port and c.raddr and c.raddr.port == client_port:
                        return pid
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class Conn:
    """One keep-alive HTTP/1.1 connection (h11), so the test knows which worker answers it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local_port = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.h11 = h11.Connection(h11.CLIENT)
        self.worker: int | None = None

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.local_port = self.writer.get_extra_info("sockname")[1]
        return self

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      json: Any = None) -> tuple[int, dict[str, str], Any]:
        assert self.reader is not None
        assert self.writer is not None
        body = orjson.dumps(json) if json is not None else b""
        head = [("Host", "test"), ("Content-Length", str(len(body))), *(headers or {}).items()]
        if json is not None:
            head.append(("Content-Type", "application/json"))
        self.writer.write(self.h11.send(h11.Request(method=method, target=path, headers=head))
                          + self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()
        status, answer, chunks = 0, {}, []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("server closed the connection")
        self.h11.start_next_cycle()
        raw = b"".join(chunks)
        return status, answer, orjson.loads(raw) if raw.startswith((b"{", b"[")) else raw

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


async def connections_on_every_worker(serve: Serve, n: int, *, timeout: float = 30.0) -> list[Conn]:
    """``n`` open connections that are served by every worker between them (opening more, and
    closing the surplus, until each worker has at least one)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    conns: list[Conn] = []
    while True:
        while len(conns) < n:
            conn = await Conn(serve.port).open()
            await conn.request("GET", "/healthz")  # accepted and answered: the server end exists
            conn.worker = serve.owner_of(conn.local_port)
            conns.append(conn)
        workers = {c.worker for c in conns}
        if set(serve.worker_pids()) <= workers:
            return conns
        if loop.time() > deadline:
            raise TimeoutError(f"connections reached only workers {workers} of {serve.worker_pids()}")
        crowded = max(workers, key=lambda w: sum(c.worker == w for c in conns))
        drop = next(c for c in conns if c.worker == crowded)
        conns.remove(drop)
        await drop.close()  # and open another: the kernel may hand it to the idle worker


@contextlib.asynccontextmanager
async def redis_server(port: int, tmp: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A private redis-server on ``port`` (no persistence), stopped afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by deploy/local/services.sh"
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_port, port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Standby(PrivatePostgres):
    """A streaming replica of ``primary`` (pg_basebackup -R: standby.signal and primary_conninfo)."""

    def __init__(self, primary: PrivatePostgres) -> None:  # no initdb: the base backup is the cluster
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="citypark-pg-standby-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("pg_basebackup", "-D", str(self.data), "-h", "127.0.0.1", "-p", str(primary.port),
                  "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync")


class PgBouncer:
    """A private PgBouncer in transaction mode on a free port, in front of ``host:port`` (trust),
    with ``pool_size`` server connections (run as ``postgres`` when we are root: it refuses root)."""

    def __init__(self, host: str, port: int, *, pool_size: int = 1) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="citypark-pgbouncer-"))
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={host} port={port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\nunix_socket_dir =\nauth_type = trust\n"
            f"auth_file = {self.dir}/userlist.txt\npool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            f"max_client_conn = 100\nignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.dir}/pgbouncer.log\n")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for child in self.dir.iterdir():
                shutil.chown(child, "postgres", "postgres")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        cmd = [binary, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
