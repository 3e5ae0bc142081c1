"""``citypark ingest`` and ``citypark simulate`` (registered as entry points of ``citypark.commands``)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import sys
import time
from typing import Annotated, Literal

import typer

from app.core.settings import get_settings

DEFAULT_METRICS_PORT = 9464
Envelope = Literal["chirpstack", "chirpstack-protobuf", "tts", "json"]


def ingest(
    workers: Annotated[int, typer.Option(min=1, help="worker processes (they share the subscription)")] = 1,
    client_id: Annotated[str | None, typer.Option(
        help="client id prefix; worker i connects as PREFIX-i (stable, so its session persists)")] = None,
    metrics_port: Annotated[int, typer.Option(
        help="Prometheus /metrics of worker i on PORT+i (host: CITYPARK_METRICS_HOST, default 127.0.0.1); "
             "0 turns it off")] = DEFAULT_METRICS_PORT,
) -> None:
    """MQTT ingest workers: shared subscription, batched idempotent writes, acks after commit."""
    _logging()
    prefix = client_id or f"citypark-ingest-{socket.gethostname()}"
    if workers == 1:
        run_worker(0, prefix, metrics_port)
        return
    sys.exit(_supervise(workers, prefix, metrics_port))


def run_worker(index: int, prefix: str, metrics_port: int) -> None:
    """One worker in this process until SIGINT/SIGTERM."""
    from sensors import metrics
    from sensors.worker import Worker

    _logging()
    settings = get_settings()
    metrics.serve(metrics_port + index if metrics_port else 0, settings.metrics_host)
    worker = Worker(settings, client_id=f"{prefix}-{index}", name=str(index))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(main())


def _supervise(n: int, prefix: str, metrics_port: int) -> int:
    """Run ``n`` worker processes; restart one that dies; stop them all on SIGINT/SIGTERM."""
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def start(i: int) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=run_worker, args=(i, prefix, metrics_port), name=f"ingest-{i}")
        proc.start()
        return proc

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    procs = [start(i) for i in range(n)]
    while not stopping:
        for i, proc in enumerate(procs):
            if not proc.is_alive() and not stopping:
                logging.getLogger(__name__).warning("worker %s exited (%s); restarting", i, proc.exitcode)
                procs[i] = start(i)
        time.sleep(0.5)  # supervision tick
    for proc in procs:
        if proc.pid and proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return 0


def simulate(
    rate: Annotated[float, typer.Option(help="messages per second to publish (all kinds)")] = 20.0,
    duration: Annotated[float, typer.Option(help="seconds to run; 0 runs until Ctrl-C")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="random seed (repeatable runs)")] = None,
    speed: Annotated[float, typer.Option(help="time compression of stays (1 = real time)")] = 1.0,
    dry_run: Annotated[bool, typer.Option(help="print 'topic<TAB>payload' lines instead of publishing")] = False,
    backfill_hours: Annotated[float, typer.Option(
        help="a district with no history yet first gets this many hours of simulated past (once: a "
             "district with stored states resumes from them)")] = 0.0,
    as_: Annotated[Envelope, typer.Option("--as", help=(
        "what the inventory's LoRaWAN devices (dev_eui) speak: their network server's uplink "
        "envelope with the vendor's frames, or citypark's JSON; other sensors always speak JSON"))] = "chirpstack",
) -> None:
    """Publish realistic sensor traffic for the seeded district over MQTT."""
    from sensors import backfill
    from sensors.simulator import run_simulator

    _logging()
    settings = get_settings()
    sent = run_simulator(settings, rate=rate, duration=duration, seed=seed, speed=speed, dry_run=dry_run,
                         begin=backfill.begin(settings, backfill_hours), envelope=as_)
    typer.echo(f"simulate: {sent} messages", err=True)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s")
