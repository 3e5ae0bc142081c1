"""The writing half of an ingest worker, in its own process: validate, write, commit, report.

paho-mqtt is pure Python, so receiving alone keeps one core busy; validating and writing in the
same process would take the GIL from paho's thread for every message. The worker therefore
forwards each batch of raw ``(topic, payload)`` pairs over a pipe to this process, which
validates it, writes it with ``app.occupancy.service.write_batch`` in one transaction, commits,
and only then replies; the worker acknowledges the batch's messages on that reply. Replies come
in the order the batches were sent. Preparing batch n+1 overlaps writing batch n here, as it did
in the single-process worker.

Messages on the pipe, worker → writer: a batch (``list[tuple[str, bytes]]``) or ``None`` (no more).
Writer → worker: ``("ready",)`` once connected, ``("db_error",)`` per failed attempt,
``("done", Summary)`` per committed batch, ``("abandoned", what)`` when told to stop while
the database is away (the batch in hand is then not acknowledged; the broker resends it).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import asyncpg

from app.core.settings import Settings
from app.occupancy import messages
from app.occupancy import service as occupancy
from app.occupancy.messages import Count, Directory, Event, Rejected, Rejection
from sensors.real_inputs import Extra, RealInputs

log = logging.getLogger(__name__)
T = TypeVar("T")
Raw = tuple[str, bytes]
# SQLSTATE classes worth retrying: connection (08), rollback/deadlock (40), resources (53),
# operator intervention such as a shutdown (57), system errors (58).
TRANSIENT_SQLSTATE = ("08", "40", "53", "57", "58")
PR_SET_PDEATHSIG = 1


class Abandoned(Exception):
    """Stopping while the database is away: the batch in hand stays unacknowledged."""


@dataclass(slots=True)
class Prepared:
    size: int
    events: list[tuple[Raw, Event]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    extra: Extra = field(default_factory=Extra)  # uplinks' reports, passages (sensors/real_inputs.py)


@dataclass(frozen=True, slots=True)
class Summary:
    """What a committed batch held, for the worker's metrics."""

    events: dict[str, int]
    rejected: dict[str, int]
    duplicates: int | None
    newest: datetime | None
    seconds: float


def is_transient(exc: BaseException) -> bool:
    """A failure of the database or the connection (retry), not of the data."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "").startswith(TRANSIENT_SQLSTATE)
    return isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError)


def main(conn: Connection, settings: Settings, stop: Any) -> None:
    """Entry point of the writer process (``stop``: a multiprocessing Event set by the worker)."""
    _die_with_parent()
    # The worker decides when to stop (a Ctrl-C reaches the whole process group).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s")
    asyncio.run(BatchWriter(settings, conn, stop).run())


def _die_with_parent() -> None:
    """Linux: a kill -9 of the worker takes this process with it (no orphan holding a connection)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # elsewhere the worker's closed pipe still ends this process
        pass
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():  # the worker died before prctl took effect
        os._exit(1)


class BatchWriter:
    """Validates and writes the batches that arrive on ``conn``, replying after each commit."""

    def __init__(self, settings: Settings, conn: Connection, stop: Any) -> None:
        self.settings = settings
        self.conn = conn
        self.stop = stop
        self.directory = Directory()
        self.inputs = RealInputs(settings)
        self._pool: asyncpg.Pool | None = None

    async def run(self) -> None:
        """Until the worker sends ``None`` or closes the pipe, or stops while the database is away."""
        try:
            self._pool = await self._retry(self._create_pool, what="connect to PostgreSQL")
            self.conn.send(("ready",))
            ready: asyncio.Queue[Prepared | None] = asyncio.Queue(maxsize=1)
            await asyncio.gather(self._prepare_loop(ready), self._write_loop(ready))
        except Abandoned as exc:  # sent from here: asyncio.run waits for the thread in recv()
            self.conn.send(("abandoned", str(exc)))
        finally:
            if self._pool is not None:
                await self._pool.close()

    def _recv(self) -> list[Raw] | None:
        try:
            return self.conn.recv()
        except EOFError:  # the worker is gone
            return None

    async def _prepare_loop(self, ready: asyncio.Queue[Prepared | None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (batch := await loop.run_in_executor(None, self._recv)) is not None:
                await ready.put(await self._prepare(batch))
        finally:
            await ready.put(None)

    async def _prepare(self, items: list[Raw]) -> Prepared:
        prepared = Prepared(len(items))
        root = self.settings.mqtt_topic_root
        parsed = []
        claimed = [self.inputs.claims(item[0]) for item in items]
        if any(claimed):
            real = [item for item, mine in zip(items, claimed, strict=True) if mine]
            items = [item for item, mine in zip(items, claimed, strict=True) if not mine]
            prepared.extra = await self.inputs.prepare(
                real, self.directory, lambda body, what: self._with_db(body, what=what))
            prepared.events += prepared.extra.events
            prepared.rejections += prepared.extra.rejections
        for item in items:
            try:
                parsed.append((item, messages.parse_message(item[0], item[1], root=root)))
            except Rejected as rej:
                prepared.rejections.append(Rejection(item[0], item[1], rej.stored_reason))
        sensor_ids, facility_ids = self.directory.wanted(m for _, m in parsed)
        if sensor_ids or facility_ids:
            await self._with_db(lambda conn: self.directory.fetch(
                conn, sensor_ids=sensor_ids, facility_ids=facility_ids), what="look up sensors")
        self._validate(parsed, prepared)
        return prepared

    def _validate(self, parsed: list[tuple[Raw, messages.Message]], prepared: Prepared) -> None:
        now, skew = datetime.now(UTC), self.settings.max_clock_skew_s
        for item, message in parsed:
            try:
                prepared.events.append((item, messages.validate(
                    message, directory=self.directory, now=now, max_clock_skew_s=skew)))
            except Rejected as rej:
                prepared.rejections.append(Rejection(item[0], item[1], rej.stored_reason))

    async def _write_loop(self, ready: asyncio.Queue[Prepared | None]) -> None:
        while (prepared := await ready.get()) is not None:
            started = time.monotonic()
            result = await self._commit(prepared)
            self.conn.send(("done", _summary(prepared, result, time.monotonic() - started)))

    async def _commit(self, prepared: Prepared) -> occupancy.BatchResult | None:
        events = [e for _, e in prepared.events]

        async def write(conn: asyncpg.Connection) -> occupancy.BatchResult:
            async with conn.transaction():
                result = await occupancy.write_batch(conn, events, rejections=prepared.rejections,
                                                     origins={e: raw for raw, e in prepared.events})
                await self.inputs.commit(conn, prepared.extra, _counted(events))
                return result

        try:
            result = await self._with_db(write, what="write a batch")
            self.inputs.committed()
            return result
        except asyncpg.PostgresError as exc:  # the data, not the database: isolate the culprit
            log.error("batch failed (%s); writing its events one by one", exc)
        await self._commit_one_by_one(prepared)
        return None

    async def _commit_one_by_one(self, prepared: Prepared) -> None:
        async def write(events: list[Event], rejections: list[Rejection],
                        origins: dict[Event, Raw] | None = None) -> None:
            await self._with_db(lambda conn: _write_single(conn, events, rejections, origins), what="write an event")

        for (topic, payload), event in prepared.events:
            try:
                await write([event], [], {event: (topic, payload)})
            except asyncpg.PostgresError as exc:
                await write([], [Rejection(topic, payload, f"write_failed: {exc}"[:300])])
        await write([], prepared.rejections)
        try:
            await self._with_db(lambda conn: self._commit_extra(conn, prepared.extra), what="write reports")
            self.inputs.committed()
        except asyncpg.PostgresError as exc:
            log.error("reports and passages of a batch failed (%s); not written", exc)

    async def _commit_extra(self, conn: asyncpg.Connection, extra: Extra) -> None:
        async with conn.transaction():
            await self.inputs.commit(conn, extra, [])

    async def _with_db(self, body: Callable[[asyncpg.Connection], Awaitable[T]], *, what: str) -> T:
        """Run ``body`` on a pooled connection, retrying transient failures with backoff."""
        assert self._pool is not None
        pool = self._pool

        async def attempt() -> T:
            async with pool.acquire() as conn:
                return await body(conn)

        return await self._retry(attempt, what=what)

    async def _retry(self, attempt: Callable[[], Awaitable[T]], *, what: str) -> T:
        delay = 0.1
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self.stop.is_set():  # leave it unacknowledged: the broker resends it
                    raise Abandoned(what) from exc
                self.conn.send(("db_error",))
                log.warning("could not %s (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)  # backoff while the database is away, not a test wait
            delay = min(delay * 2, 5.0)

    async def _create_pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(self.settings.asyncpg_dsn, min_size=1, max_size=3,
                                         command_timeout=60, timeout=10, **self.settings.asyncpg_options)


def _summary(prepared: Prepared, result: occupancy.BatchResult | None, seconds: float) -> Summary:
    kinds = Counter(type(e).__name__.lower() for _, e in prepared.events)
    if prepared.extra.passages:
        kinds["passage"] = len(prepared.extra.passages)
    reasons = Counter(r.reason.split(":", 1)[0] for r in prepared.rejections)
    duplicates = None
    if result is not None:
        duplicates = max(0, kinds.get("occupancy", 0) - result.history_inserted - result.conflicts)
        if result.conflicts:
            reasons[occupancy.CONFLICTING_DUPLICATE] += result.conflicts
    newest = max((e.observed_at for _, e in prepared.events), default=None)
    return Summary(dict(kinds), dict(reasons), duplicates, newest, seconds)


def _counted(events: list[Event]) -> list[str]:
    """Facilities with gate counts in the batch: their passages are recounted from the count."""
    return sorted({e.facility_id for e in events if isinstance(e, Count)})


async def _write_single(conn: asyncpg.Connection, events: list[Event], rejections: list[Rejection],
                        origins: dict[Event, Raw] | None) -> None:
    async with conn.transaction():
        await occupancy.write_batch(conn, events, rejections=rejections, origins=origins)
