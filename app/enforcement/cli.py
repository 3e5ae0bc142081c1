"""``citypark enforce``: detect violations continuously (registered in ``citypark.commands``).

Every ``--interval`` seconds, one pass in one transaction: re-evaluate the spaces whose event
history changed since the last pass (late and re-delivered events included), the open stays
whose limit or window the clock has reached, and, when the rules change, every ruled space.
The first pass catches up on ``--catch-up-hours`` of history, so a restart loses nothing.
A failed pass (database down) is rolled back, its state restored, and retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy import text

from app.core.db import create_engine, create_sessionmaker
from app.core.settings import Settings, get_settings
from app.enforcement.violations import Sweep

log = logging.getLogger("citypark.enforce")
MAX_BACKOFF_S = 30.0


def enforce(
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between passes")] = 2.0,
    lookback: Annotated[float, typer.Option(min=0, help="seconds of event ids re-read for late commits")] = 10.0,
    catch_up_hours: Annotated[float, typer.Option(min=0, help="history re-evaluated on start")] = 24.0,
    once: Annotated[bool, typer.Option("--once", help="run one pass and exit")] = False,
) -> None:
    """Detect overstays and no-parking violations continuously from the sensor history."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sweep = Sweep(lookback=timedelta(seconds=lookback), catch_up=timedelta(hours=catch_up_hours))
    if not asyncio.run(run(get_settings(), sweep, interval=interval, once=once)):
        raise typer.Exit(1)  # --once and the pass failed (said in the log line above)


async def run(settings: Settings, sweep: Sweep, *, interval: float, once: bool = False,
              stop: asyncio.Event | None = None) -> bool:
    """Passes until ``stop`` is set (SIGINT/SIGTERM set it when run from the command line);
    False when ``once`` and the one pass failed."""
    stop = stop or _stop_on_signals()
    engine = create_engine(settings, pool_size=1)
    sessions = create_sessionmaker(engine)
    backoff = interval
    try:
        while not stop.is_set():
            ok = await _pass(sessions, sweep, settings, retry=not once)
            if once:
                return ok
            backoff = interval if ok else min(MAX_BACKOFF_S, backoff * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
    finally:
        await engine.dispose()
    return True


async def _pass(sessions: object, sweep: Sweep, settings: Settings, *, retry: bool = True) -> bool:
    saved = copy.deepcopy(sweep)
    started = time.monotonic()
    try:
        async with sessions() as session, session.begin():  # type: ignore[operator]
            result = await sweep.run_pass(session, now=datetime.now(UTC), settings=settings)
            summary = tuple((await session.execute(text(SUMMARY_SQL))).one())
    except Exception as exc:  # keep running: the next pass retries from the restored state
        sweep.__dict__.update(saved.__dict__)
        log.warning("pass failed%s: %s: %s", ", will retry" if retry else "", type(exc).__name__, exc)
        return False
    if result.spaces:
        # at info only when the violations changed (new, ended or removed): a quiet terminal otherwise
        changed = summary != getattr(sweep, "last_summary", None)
        sweep.last_summary = summary  # type: ignore[attr-defined]
        log.log(logging.INFO if changed else logging.DEBUG,
                "pass: %d spaces, %d violations, %.0f ms; %d active violations in all", result.spaces,
                result.violations, (time.monotonic() - started) * 1000, summary[0])
    return True


# active violations, every violation, the newest: changes whenever one starts, ends or is removed
SUMMARY_SQL = "SELECT count(*) FILTER (WHERE ended_at IS NULL), count(*), coalesce(max(id), 0) FROM violations"


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop
