"""The ingest worker: MQTT 5 shared subscription → batched, idempotent writes → acknowledgements.

Threads: paho's network loop runs in its own thread (``loop_start``), so keepalives and
receiving never wait for the database; it only appends messages to the :class:`Inbox`. The
asyncio side takes batches (``ingest_batch_size`` messages or ``ingest_flush_ms`` after the
first, whichever comes first), validates them, writes them with
``app.services.occupancy.write_batch`` in one transaction, commits, and only then sends the
PUBACKs (paho's ``manual_ack``). Preparing batch n+1 overlaps writing batch n.

Memory is bounded by MQTT 5 flow control (§4.9): the broker sends at most Receive Maximum
unacknowledged messages. While PostgreSQL is down nothing is acknowledged, so the broker stops
sending and queues the rest; the worker retries the batch with backoff and resumes without loss.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from app.services import occupancy
from app.services.occupancy import Directory, Event, Rejected, Rejection
from app.settings import Settings
from sensors import metrics
from sensors.mqtt import RECEIVE_MAXIMUM, connect_async, make_client

log = logging.getLogger(__name__)
T = TypeVar("T")
# SQLSTATE classes worth retrying: connection (08), rollback/deadlock (40), resources (53),
# operator intervention such as a shutdown (57), system errors (58).
TRANSIENT_SQLSTATE = ("08", "40", "53", "57", "58")


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    arrived: float


@dataclass(slots=True)
class Prepared:
    items: list[Inbound]
    events: list[tuple[Inbound, Event]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class Abandoned(Exception):
    """Stopping while the database is away: the batch in hand stays unacknowledged."""


def is_transient(exc: BaseException) -> bool:
    """A failure of the database or the connection (retry), not of the data."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "").startswith(TRANSIENT_SQLSTATE)
    return isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError)


class Inbox:
    """Messages handed from paho's thread to the asyncio loop, in arrival order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, batch_size: int) -> None:
        self._loop = loop
        self._batch_size = batch_size
        self._items: list[Inbound] = []
        self._lock = threading.Lock()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Inbound) -> None:
        """Called from paho's thread; wakes the loop for a first message and a full batch."""
        with self._lock:
            self._items.append(item)
            n = len(self._items)
        if n == 1 or n == self._batch_size:
            self._loop.call_soon_threadsafe(self._wake.set)

    def wake(self) -> None:
        self._loop.call_soon_threadsafe(self._wake.set)

    async def take(self, flush_s: float, stopping: Callable[[], bool]) -> list[Inbound]:
        """The next batch: full, or whatever came within ``flush_s`` of its first message."""
        while not self._items and not stopping():
            await self._wait(None)
        if self._items:
            deadline = self._items[0].arrived + flush_s
            while len(self._items) < self._batch_size and (left := deadline - time.monotonic()) > 0:
                await self._wait(left)
        with self._lock:
            batch, self._items = self._items[: self._batch_size], self._items[self._batch_size:]
        return batch

    async def _wait(self, timeout: float | None) -> None:
        self._wake.clear()
        if self._items and timeout is None:
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)


class Worker:
    """One ingest worker: a persistent MQTT session and a small asyncpg pool."""

    def __init__(self, settings: Settings, *, client_id: str, name: str = "0") -> None:
        self.settings = settings
        self.client_id = client_id
        self.name = name
        self.directory = Directory()
        self.topic = f"$share/{settings.mqtt_share_group}/{settings.mqtt_topic_root}/#"
        self._pending: dict[int, Inbound] = {}  # current connection's unacknowledged messages
        self._pending_lock = threading.Lock()
        self._stop = False
        self._pool: asyncpg.Pool | None = None

    @property
    def receive_maximum(self) -> int:
        """Unacknowledged messages the broker may send us: four batches, so batches overlap."""
        return min(RECEIVE_MAXIMUM, max(1000, 4 * self.settings.ingest_batch_size))

    def stop(self) -> None:
        """Finish the batches in hand, acknowledge them, disconnect (the session persists)."""
        self._stop = True
        if hasattr(self, "inbox"):
            self.inbox.wake()

    async def run(self) -> None:
        """Run until :meth:`stop`."""
        self.inbox = Inbox(asyncio.get_running_loop(), self.settings.ingest_batch_size)
        self._pool = pool = await self._retry(self._create_pool, what="connect to PostgreSQL")
        self.client = self._start_mqtt()
        ready: asyncio.Queue[Prepared | None] = asyncio.Queue(maxsize=1)
        try:
            await asyncio.gather(self._prepare_loop(ready), self._write_loop(ready))
        except Abandoned as exc:
            log.warning("stopping with a batch not written (%s); the broker keeps it", exc)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            await pool.close()

    # --- MQTT (paho's thread) ---

    def _start_mqtt(self) -> mqtt.Client:
        client = make_client(self.settings, client_id=self.client_id, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda _c, _u, _m, codes, _p: log.info("subscribed: %s", codes)
        connect_async(client, self.settings, persistent=True, receive_maximum=self.receive_maximum)
        client.loop_start()
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        with self._pending_lock:
            # Unacknowledged messages of the old connection are resent by the broker with the
            # same packet ids (MQTT 5 §4.4); their old copies must never be acknowledged.
            self._pending.clear()
        client.subscribe(self.topic, options=SubscribeOptions(qos=1))
        metrics.CONNECTED.labels(self.name).set(1)
        log.info("connected as %s (session present: %s), subscribing to %s",
                 self.client_id, flags.session_present, self.topic)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        metrics.CONNECTED.labels(self.name).set(0)
        if not self._stop:
            log.warning("disconnected from the broker (%s); paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        item = Inbound(topic, bytes(msg.payload), msg.mid, msg.qos, time.monotonic())
        if msg.qos:
            with self._pending_lock:
                self._pending[msg.mid] = item
        self.inbox.put(item)

    def _ack(self, items: list[Inbound]) -> None:
        with self._pending_lock:
            for item in items:
                if item.qos and self._pending.get(item.mid) is item:
                    del self._pending[item.mid]
                    self.client.ack(item.mid, item.qos)

    # --- batches (asyncio) ---

    async def _prepare_loop(self, ready: asyncio.Queue[Prepared | None]) -> None:
        flush_s = self.settings.ingest_flush_ms / 1000
        try:
            # On stop, what is still in the inbox stays unacknowledged: the broker resends it.
            while not self._stop:
                batch = await self.inbox.take(flush_s, lambda: self._stop)
                if batch:
                    await ready.put(await self._prepare(batch))
        finally:
            await ready.put(None)

    async def _prepare(self, items: list[Inbound]) -> Prepared:
        prepared = Prepared(items)
        parsed = []
        for item in items:
            try:
                parsed.append((item, occupancy.parse_message(item.topic, item.payload,
                                                             root=self.settings.mqtt_topic_root)))
            except Rejected as rej:
                prepared.rejections.append(Rejection(item.topic, item.payload, rej.stored_reason))
        sensor_ids, facility_ids = self.directory.wanted(m for _, m in parsed)
        if sensor_ids or facility_ids:
            await self._with_db(lambda conn: self.directory.fetch(
                conn, sensor_ids=sensor_ids, facility_ids=facility_ids), what="look up sensors")
        now = datetime.now(UTC)
        for item, message in parsed:
            try:
                prepared.events.append((item, occupancy.validate(
                    message, directory=self.directory, now=now,
                    max_clock_skew_s=self.settings.max_clock_skew_s)))
            except Rejected as rej:
                prepared.rejections.append(Rejection(item.topic, item.payload, rej.stored_reason))
        return prepared

    async def _write_loop(self, ready: asyncio.Queue[Prepared | None]) -> None:
        while (prepared := await ready.get()) is not None:
            started = time.monotonic()
            result = await self._commit(prepared)
            self._ack(prepared.items)
            self._observe(prepared, result, time.monotonic() - started)

    async def _commit(self, prepared: Prepared) -> occupancy.BatchResult | None:
        events = [e for _, e in prepared.events]

        async def write(conn: asyncpg.Connection) -> occupancy.BatchResult:
            async with conn.transaction():
                return await occupancy.write_batch(conn, events, rejections=prepared.rejections)

        try:
            return await self._with_db(write, what="write a batch")
        except asyncpg.PostgresError as exc:  # the data, not the database: isolate the culprit
            log.error("batch failed (%s); writing its events one by one", exc)
        await self._commit_one_by_one(prepared)
        return None

    async def _commit_one_by_one(self, prepared: Prepared) -> None:
        async def write(events: list[Event], rejections: list[Rejection]) -> None:
            await self._with_db(lambda conn: _write_single(conn, events, rejections), what="write an event")

        for item, event in prepared.events:
            try:
                await write([event], [])
            except asyncpg.PostgresError as exc:
                await write([], [Rejection(item.topic, item.payload, f"write_failed: {exc}"[:300])])
        await write([], prepared.rejections)

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
                if self._stop:  # leave it unacknowledged: the broker resends it to the next worker
                    raise Abandoned(what) from exc
                metrics.DB_ERRORS.labels(self.name).inc()
                log.warning("could not %s (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)  # backoff while the database is away, not a test wait
            delay = min(delay * 2, 5.0)

    async def _create_pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(self.settings.asyncpg_dsn, min_size=1, max_size=3,
                                         command_timeout=60, timeout=10)

    def _observe(self, prepared: Prepared, result: occupancy.BatchResult | None, seconds: float) -> None:
        name, now = self.name, time.monotonic()
        metrics.MESSAGES.labels(name).inc(len(prepared.items))
        metrics.BATCH_SIZE.labels(name).observe(len(prepared.items))
        metrics.BATCH_SECONDS.labels(name).observe(seconds)
        metrics.QUEUE_LAG.labels(name).set(now - prepared.items[0].arrived)
        metrics.BUFFERED.labels(name).set(len(self.inbox))
        for _, event in prepared.events:
            metrics.EVENTS.labels(name, type(event).__name__.lower()).inc()
        for rejection in prepared.rejections:
            metrics.REJECTED.labels(name, rejection.reason.split(":", 1)[0]).inc()
        if result is not None:
            n_occ = sum(isinstance(e, occupancy.Occupancy) for _, e in prepared.events)
            metrics.DUPLICATES.labels(name).inc(max(0, n_occ - result.history_inserted))
        if prepared.events:
            newest = max(e.observed_at for _, e in prepared.events)
            metrics.LAG.labels(name).set((datetime.now(UTC) - newest).total_seconds())


async def _write_single(conn: asyncpg.Connection, events: list[Event], rejections: list[Rejection]) -> None:
    async with conn.transaction():
        await occupancy.write_batch(conn, events, rejections=rejections)
