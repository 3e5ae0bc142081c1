"""``citypark ingest`` and ``citypark simulate`` (registered as entry points of ``citypark.commands``)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Annotated, Literal

import typer

from app.core.settings import Settings, get_settings
from sensors.supervision import RestartPolicy

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


def _supervise(n: int, prefix: str, metrics_port: int, *, target: Callable[[int, str, int], None] = run_worker,
               settings: Settings | None = None) -> int:
    """Run ``n`` worker processes; restart one that dies (``sensors.supervision``); stop them
    all on SIGINT/SIGTERM (exit 0) or when one keeps failing (exit 1)."""
    settings = settings or get_settings()
    ctx = multiprocessing.get_context("spawn")
    log = logging.getLogger(__name__)
    stopping = False
    policies = [RestartPolicy(settings.ingest_restart_backoff_s, settings.ingest_restart_backoff_max_s,
                              settings.ingest_restart_max_failures, settings.ingest_restart_stable_s)
                for _ in range(n)]
    started = [0.0] * n
    due: list[float | None] = [None] * n  # when a dead worker is started again

    def start(i: int) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=target, args=(i, prefix, metrics_port), name=f"ingest-{i}")
        proc.start()
        started[i] = time.monotonic()
        return proc

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = [start(i) for i in range(n)]
    code = 0
    try:
        while not stopping:
            now = time.monotonic()
            for i, proc in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                if due[i] is None:
                    delay = policies[i].after_exit(now - started[i])
                    if delay is None:
                        log.error("worker %s exited (%s) %s times in a row; giving up (see its log above)",
                                  i, proc.exitcode, policies[i].failures)
                        stopping, code = True, 1
                        break
                    log.warning("worker %s exited (%s) after %.1f s; restart %s of at most %s in %.2f s", i,
                                proc.exitcode, now - started[i], policies[i].failures,
                                policies[i].max_failures - 1, delay)
                    due[i] = now + delay
                elif now >= due[i]:  # type: ignore[operator]
                    due[i] = None
                    procs[i] = start(i)
            time.sleep(0.1)  # supervision tick
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(procs)
    return code


def _stop_all(procs: list[multiprocessing.process.BaseProcess]) -> None:
    for proc in procs:
        if proc.pid and proc.is_alive():
            proc.terminate()
    for proc in procs:
        if proc.pid:
            proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()


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
