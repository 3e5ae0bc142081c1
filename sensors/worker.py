"""The ingest worker: MQTT 5 shared subscription → batched, idempotent writes → acknowledgements.

Two processes per worker. In this one, paho's network loop runs in its own thread
(``loop_start``), so keepalives and receiving never wait for the database; it only appends
messages to the :class:`Inbox`. The asyncio side takes batches (``ingest_batch_size`` messages
or ``ingest_flush_ms`` after the first, whichever comes first) and forwards their raw topics and
payloads to the writer process (:mod:`sensors.writer`), which validates them, writes them with
``app.occupancy.service.write_batch`` in one transaction and commits; only on its reply are the
PUBACKs sent (paho's ``manual_ack``). paho is pure Python and needs a core to itself at broker
speed; the writer's per-message work runs on another core instead of taking paho's GIL.

Memory is bounded by MQTT 5 flow control (§4.9): the broker sends at most Receive Maximum
unacknowledged messages. While PostgreSQL is down nothing is acknowledged, so the broker stops
sending and queues the rest; the writer retries the batch with backoff and resumes without loss.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from app.core.settings import Settings
from sensors import metrics, writer
from sensors.lorawan.envelopes import subscriptions
from sensors.mqtt import RECEIVE_MAXIMUM, connect_async, make_client
from sensors.writer import Abandoned, Summary

log = logging.getLogger(__name__)
IN_FLIGHT = 2  # batches at the writer: one being written, the next being validated


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    arrived: float
    link: int = 0  # 0: the sensors' broker; 1: the network servers' (CITYPARK_LORAWAN_MQTT_URL)


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


class WriterProcess:
    """The worker's end of the pipe to its writer process (:mod:`sensors.writer`)."""

    def __init__(self, settings: Settings, name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self.stopping = ctx.Event()
        self._conn, child = ctx.Pipe()
        # Started from the main thread: the writer's parent-death signal follows this thread.
        self.process = ctx.Process(target=writer.main, args=(child, settings, self.stopping),
                                   name=f"ingest-writer-{name}", daemon=True)
        self.process.start()
        child.close()

    async def send(self, batch: list[tuple[str, bytes]] | None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._conn.send, batch)

    async def reply(self) -> tuple[Any, ...]:
        """The next reply that is not a note: ``("ready",)``, ``("done", Summary)``, …"""
        loop = asyncio.get_running_loop()
        while True:
            message = await loop.run_in_executor(None, self._conn.recv)
            if message[0] == "abandoned":
                raise Abandoned(message[1])
            if message[0] != "db_error":
                return message
            metrics.DB_ERRORS.labels(self.name).inc()

    def close(self) -> None:
        self.stopping.set()
        with suppress(OSError):
            self._conn.send(None)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
        self._conn.close()


class Worker:
    """One ingest worker: a persistent MQTT session and a writer process."""

    def __init__(self, settings: Settings, *, client_id: str, name: str = "0") -> None:
        self.settings = settings
        self.client_id = client_id
        self.name = name
        self.topic = f"$share/{settings.mqtt_share_group}/{settings.mqtt_topic_root}/#"
        # Network-server uplinks: on the same connection when their broker is the sensors',
        # else on a second connection (link 1) to CITYPARK_LORAWAN_MQTT_URL.
        lorawan = [f"$share/{settings.mqtt_share_group}/{t}" for t in subscriptions(settings.lorawan_format_set)]
        same_broker = settings.lorawan_url == settings.mqtt_url
        self.topics = {0: [self.topic, *lorawan] if same_broker else [self.topic]}
        if lorawan and not same_broker:
            self.topics[1] = lorawan
        self._clients: dict[int, mqtt.Client] = {}
        self._pending: dict[tuple[int, int], Inbound] = {}  # current connections' unacknowledged messages
        self._pending_lock = threading.Lock()
        self._stop = False
        self._writer: WriterProcess | None = None

    @property
    def receive_maximum(self) -> int:
        """Unacknowledged messages the broker may send us: four batches, so batches overlap."""
        return min(RECEIVE_MAXIMUM, max(1000, 4 * self.settings.ingest_batch_size))

    def stop(self) -> None:
        """Finish the batches in hand, acknowledge them, disconnect (the session persists)."""
        self._stop = True
        if self._writer is not None:
            self._writer.stopping.set()
        if hasattr(self, "inbox"):
            self.inbox.wake()

    async def run(self) -> None:
        """Run until :meth:`stop`."""
        self.inbox = Inbox(asyncio.get_running_loop(), self.settings.ingest_batch_size)
        self._writer = WriterProcess(self.settings, self.name)
        if self._stop:
            self._writer.stopping.set()
        self.client: mqtt.Client | None = None
        in_flight: asyncio.Queue[list[Inbound] | None] = asyncio.Queue(maxsize=IN_FLIGHT)
        try:
            await self._writer.reply()  # ("ready",): connected to PostgreSQL
            self.client = self._start_mqtt()
            if 1 in self.topics:
                self._start_mqtt(link=1)
            await asyncio.gather(self._forward_loop(in_flight), self._ack_loop(in_flight))
        except Abandoned as exc:
            log.warning("stopping with a batch not written (%s); the broker keeps it", exc)
        finally:
            for client in self._clients.values():
                client.disconnect()
                client.loop_stop()
            self._writer.close()

    # --- MQTT (paho's thread) ---

    def _start_mqtt(self, link: int = 0) -> mqtt.Client:
        settings = self.settings if link == 0 else self.settings.model_copy(
            update={"mqtt_url": self.settings.lorawan_url})
        client = make_client(settings, client_id=self._client_id(link), manual_ack=True)
        client.user_data_set(link)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda _c, _u, _m, codes, _p: log.info("subscribed: %s", codes)
        connect_async(client, settings, persistent=True, receive_maximum=self.receive_maximum)
        self._clients[link] = client
        client.loop_start()
        return client

    def _on_connect(self, client: mqtt.Client, link: int, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        with self._pending_lock:
            # Unacknowledged messages of the old connection are resent by the broker with the
            # same packet ids (MQTT 5 §4.4); their old copies must never be acknowledged.
            for key in [k for k in self._pending if k[0] == link]:
                del self._pending[key]
        client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self.topics[link]])
        metrics.CONNECTED.labels(self.name).set(1)
        log.info("connected as %s (session present: %s), subscribing to %s",
                 self._client_id(link), flags.session_present, ", ".join(self.topics[link]))

    def _client_id(self, link: int) -> str:
        return self.client_id if link == 0 else f"{self.client_id}-lorawan"

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        metrics.CONNECTED.labels(self.name).set(0)
        if not self._stop:
            log.warning("disconnected from the broker (%s); paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, link: int, msg: mqtt.MQTTMessage) -> None:
        # Runs for every message in paho's thread, which receiving keeps busy: the least work.
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        item = Inbound(topic, bytes(msg.payload), msg.mid, msg.qos, time.monotonic(), link)
        if item.qos:
            with self._pending_lock:
                self._pending[(link, item.mid)] = item
        self.inbox.put(item)

    def _ack(self, items: list[Inbound]) -> None:
        with self._pending_lock:
            for item in items:
                if item.qos and self._pending.get((item.link, item.mid)) is item:
                    del self._pending[(item.link, item.mid)]
                    self._clients[item.link].ack(item.mid, item.qos)

    # --- batches (asyncio) ---

    async def _forward_loop(self, in_flight: asyncio.Queue[list[Inbound] | None]) -> None:
        assert self._writer is not None
        flush_s = self.settings.ingest_flush_ms / 1000
        try:
            # On stop, what is still in the inbox stays unacknowledged: the broker resends it.
            while not self._stop:
                batch = await self.inbox.take(flush_s, lambda: self._stop)
                if batch:
                    await in_flight.put(batch)  # waits while IN_FLIGHT batches are at the writer
                    await self._writer.send([(i.topic, i.payload) for i in batch])
        finally:
            await in_flight.put(None)

    async def _ack_loop(self, in_flight: asyncio.Queue[list[Inbound] | None]) -> None:
        assert self._writer is not None
        while (items := await in_flight.get()) is not None:
            _, summary = await self._writer.reply()  # ("done", Summary): the batch is committed
            self._ack(items)
            self._observe(items, summary)

    def _observe(self, items: list[Inbound], summary: Summary) -> None:
        name, now = self.name, time.monotonic()
        metrics.MESSAGES.labels(name).inc(len(items))
        metrics.BATCH_SIZE.labels(name).observe(len(items))
        metrics.BATCH_SECONDS.labels(name).observe(summary.seconds)
        metrics.QUEUE_LAG.labels(name).set(now - items[0].arrived)
        metrics.BUFFERED.labels(name).set(len(self.inbox))
        for kind, n in summary.events.items():
            metrics.EVENTS.labels(name, kind).inc(n)
        for reason, n in summary.rejected.items():
            metrics.REJECTED.labels(name, reason).inc(n)
        if summary.duplicates is not None:
            metrics.DUPLICATES.labels(name).inc(summary.duplicates)
        if summary.newest is not None:
            metrics.LAG.labels(name).set((datetime.now(UTC) - summary.newest).total_seconds())
