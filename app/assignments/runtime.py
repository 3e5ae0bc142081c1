"""Per-process machinery of matching: the batcher, the free-space index, the SSE hub, and the
listener that keeps them current from PostgreSQL notifications.

- :class:`Batcher` gathers assignment requests for ``batch_window_ms`` (or until ``batch_max``
  are waiting) and solves them together (0 = each alone, immediately).
- ``LISTEN space_state`` (sent by ingest after each committed batch, with the ids whose
  occupancy changed) refreshes those spaces in the :class:`FreeIndex` and settles holds on
  spaces now occupied (``matching_reassign``); ``LISTEN assignments`` (trigger of migration
  0003) refreshes the index and wakes SSE streams of that assignment, whichever process wrote.
- A periodic pass reloads the index and sweeps lost holds, so a missed notification (listener
  reconnect) delays an update by at most a few seconds but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.assignments import service
from app.assignments.eligibility import EligibilityCache
from app.assignments.free_index import FreeIndex
from app.assignments.holds import WRITERS, HoldWriter
from app.assignments.reassign import handle_lost_holds
from app.core.db import create_engine
from app.core.settings import Settings
from app.keys.service import Principal

log = logging.getLogger(__name__)
TAKEN_S = 10.0  # a space lost to another hold reads held this long (the poll learns the real end)
RELOAD_S = 60.0  # full state reload: heartbeats refresh last_seen without a notification
SWEEP_S = 5.0
POLL_S = 0.5  # new holds of other processes reach this index within about this
HOLD_MARGIN_S = 2.0  # a hold's range starts when its transaction does (space holds: one short statement)

Pending = tuple[service.AssignmentRequest, set[str], asyncio.Future[list[service.Option]]]
Solver = Callable[[service.Batch, Any], Awaitable[list[list[service.Option]]]]


class Batcher:
    """Collects requests for ``window_s`` and hands each its options from one joint solve.

    A batch is solved when its window ends or as soon as it holds ``max_size`` requests
    (size or time, whichever comes first): under load nobody waits out the window for peers
    that have already arrived.
    """

    def __init__(self, window_s: float, solve: Solver, max_size: int = 16) -> None:
        self.window_s, self.solve, self.max_size = window_s, solve, max_size
        self.pending: list[Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def propose(self, request: service.AssignmentRequest, excluded: set[str],
                      conn: Any = None) -> list[service.Option]:
        """The request's ordered options once its batch is solved.

        With no window the request is solved alone, on ``conn`` (its own session) if given.
        """
        if self.window_s <= 0:
            return (await self.solve(service.Batch([request], [excluded]), conn))[0]
        future: asyncio.Future[list[service.Option]] = asyncio.get_running_loop().create_future()
        self.pending.append((request, excluded, future))
        if len(self.pending) >= self.max_size:
            self._fire()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self._fire)
        return await future

    def _fire(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        items, self.pending = self.pending, []
        task = asyncio.create_task(self._run(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[Pending]) -> None:
        try:
            results = await self.solve(service.Batch([r for r, _, _ in items], [e for _, e, _ in items]), None)
        except Exception as exc:  # every waiting request gets the error, none hangs
            for _, _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), options in zip(items, results, strict=True):
            if not future.done():
                future.set_result(options)


class Hub:
    """Wakes the SSE streams of an assignment when it changes."""

    def __init__(self) -> None:
        self.queues: dict[uuid.UUID, set[asyncio.Queue[None]]] = {}

    @contextlib.contextmanager
    def subscribe(self, assignment_id: uuid.UUID) -> Any:
        queue: asyncio.Queue[None] = asyncio.Queue()
        self.queues.setdefault(assignment_id, set()).add(queue)
        try:
            yield queue
        finally:
            self.queues[assignment_id].discard(queue)
            if not self.queues[assignment_id]:
                del self.queues[assignment_id]

    def notify(self, assignment_id: uuid.UUID) -> None:
        for queue in self.queues.get(assignment_id, ()):
            queue.put_nowait(None)


class MatchingRuntime:
    """Owns the per-process pieces; ``start()`` on app startup, ``stop()`` on shutdown."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        # Reads of the batcher get their own small pool: a request holds its session's
        # connection while it waits for its batch, so sharing the app's pool could deadlock.
        self.settings, self.engine = settings, create_engine(settings, pool_size=4, max_overflow=4)
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.eligibility = EligibilityCache(settings.timezone)
        self.index = FreeIndex(settings.stale_after_s)
        self.hub = Hub()
        self.batcher = Batcher(settings.batch_window_ms / 1000, self.solve, settings.batch_max)
        self.ready = False
        self._dirty: set[str] = set()
        self._occupied: set[str] = set()
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._holds_since = 0.0
        self.writer: HoldWriter | None = None
        # called with the facility ids of each NOTIFY facility_state (gate counts moved)
        self.facility_listeners: list[Callable[[list[str]], None]] = []

    async def solve(self, batch: service.Batch, conn: Any = None) -> list[list[service.Option]]:
        """Candidates for the whole batch (index, else one query), then the exact joint decision."""
        if conn is None and not self._fresh():
            async with self.engine.connect() as own:
                return await self.solve(batch, own)
        eligibility = self.eligibility.current if self._fresh() else await self.eligibility.get(conn)
        if self.ready:
            self.index.apply(eligibility)
            options = service.index_options(self.index, batch)
            if eligibility.counted:
                counted = await self._counted(batch, eligibility, conn)
                options = [o + c for o, c in zip(options, counted, strict=True)]
        else:
            options = await service.fetch_options(conn, batch, settings=self.settings, eligibility=eligibility)
        return service.plan(batch, options, eligibility=eligibility, now=datetime.now(UTC))

    def _fresh(self) -> bool:
        """Whether the eligibility cache can answer without the database."""
        return time.monotonic() - self.eligibility.current.taken_at <= self.eligibility.ttl_s

    async def _counted(self, batch: service.Batch, eligibility: Any, conn: Any) -> list[list[service.Option]]:
        if conn is None:
            async with self.engine.connect() as own:
                return await self._counted(batch, eligibility, own)
        return await service.counted_options(conn, batch, settings=self.settings, eligibility=eligibility)

    async def hold(self, session: AsyncSession | None, *, principal: Principal,
                   request: service.AssignmentRequest, options: list[service.Option]) -> dict[str, Any] | None:
        """Hold the first of ``options`` still free: runs of spaces through the group-commit
        writer, a gate-counted lot in the request's own transaction (its advisory lock) — in
        ``session``, or without one in a transaction of its own, committed here."""
        i = 0
        while i < len(options):
            j = i + 1
            while options[i].space_id is not None and j < len(options) and options[j].space_id is not None:
                j += 1
            run = options[i:j]
            if run[0].space_id is not None and self.writer is not None:
                created = await self.writer.hold(service.hold_row(principal, request), run)
            else:
                created = await self._place_hold(session, principal=principal, request=request, options=run)
                if created is not None:
                    self.held(created["space_id"], created["expires_at"])
            if created is not None:
                return created
            i = j
        return None

    async def _place_hold(self, session: AsyncSession | None, **kwargs: Any) -> dict[str, Any] | None:
        if session is not None:
            return await service.place_hold(session, settings=self.settings, **kwargs)
        async with AsyncSession(self.engine) as own, own.begin():
            return await service.place_hold(own, settings=self.settings, **kwargs)

    async def start(self) -> None:
        try:
            pool = await asyncpg.create_pool(self.settings.asyncpg_dsn, min_size=1, max_size=WRITERS,
                                             reset=_no_reset, **self.settings.asyncpg_options)
            self.writer = HoldWriter(pool, self.settings, self._learn_held, self._learn_taken)
            await self._listen()
            await self._reload()
        except (OSError, asyncpg.PostgresError) as exc:  # serve anyway; reads fall back to SQL
            log.warning("matching runtime degraded at startup: %s", exc)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Let the current pass finish (cancelling mid-query can wedge a pooled connection)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            except TimeoutError:
                self._task.cancel()
        if self._listener is not None and not self._listener.is_closed():
            try:
                await asyncio.wait_for(self._listener.close(), timeout=2.0)
            except TimeoutError:
                self._listener.terminate()
        if self.writer is not None:
            await self.writer.pool.close()
        await self.engine.dispose()

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(self.settings.listen_dsn)  # never through PgBouncer
        await self._listener.add_listener("space_state", self._on_space_state)
        await self._listener.add_listener("assignments", self._on_assignment)
        await self._listener.add_listener("facility_state", self._on_facility_state)

    def _on_facility_state(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        ids = [str(i) for i in orjson.loads(payload)]
        for listener in self.facility_listeners:
            listener(ids)

    def _on_space_state(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        ids = [str(i) for i in orjson.loads(payload)]
        self._dirty.update(ids)
        self._occupied.update(ids)
        self._wake.set()

    def _on_assignment(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        change = orjson.loads(payload)
        self._dirty.update(s for s in (change.get("space_id"), change.get("old_space_id")) if s)
        self.hub.notify(uuid.UUID(change["id"]))
        self._wake.set()

    async def _loop(self) -> None:
        last_reload = last_sweep = time.monotonic()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_S)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._step(full=time.monotonic() - last_reload > RELOAD_S,
                                 sweep=time.monotonic() - last_sweep > SWEEP_S)
            except Exception:  # a bad pass must not end the loop
                log.exception("matching runtime pass failed")
            now = time.monotonic()
            last_reload = now if now - last_reload > RELOAD_S else last_reload
            last_sweep = now if now - last_sweep > SWEEP_S else last_sweep

    async def _step(self, *, full: bool, sweep: bool) -> None:
        if self._listener is None or self._listener.is_closed():
            await self._listen()
            full = sweep = True
        occupied, self._occupied = self._occupied, set()
        if occupied or sweep:
            await self.settle_lost_holds(None if sweep else sorted(occupied))
        if full:
            await self._reload()
        elif self._dirty:
            dirty, self._dirty = sorted(self._dirty), set()
            await self.index.refresh(self._conn(), dirty)
        now = await self.index.poll_holds(self._conn(), self._holds_since)
        self._holds_since = now - HOLD_MARGIN_S

    async def settle_lost_holds(self, space_ids: list[str] | None) -> list[uuid.UUID]:
        """Arrival or re-assignment for holds on spaces now occupied (one transaction)."""
        async with self.sessions() as session, session.begin():
            eligibility = await self.eligibility.get(session)
            return await handle_lost_holds(session, settings=self.settings, eligibility=eligibility,
                                           space_ids=space_ids)

    async def _reload(self) -> None:
        await self.index.load(self._conn())
        async with self.engine.connect() as conn:
            self.index.apply(await self.eligibility.get(conn))
        self.ready = True

    def _conn(self) -> asyncpg.Connection:
        """The listening connection also serves the index's reads (only this loop uses it)."""
        assert self._listener is not None
        return self._listener

    def held(self, space_id: str | None, expires_at: datetime) -> None:
        """This process placed a hold: hide the space at once (other processes poll it)."""
        if space_id is not None and self.ready:
            self.index.mark_held(space_id, expires_at.timestamp())

    def _learn_held(self, space_id: str, until: float) -> None:
        if self.ready:
            self.index.mark_held(space_id, until)

    def _learn_taken(self, space_id: str) -> None:
        if self.ready:
            self.index.mark_held(space_id, time.time() + TAKEN_S)

    async def assign(self, principal: Principal, query: service.AssignmentRequest) -> dict[str, Any]:
        """Options from the batch, then the first hold the database admits; ``NoFreeSpace`` if none.

        The runtime opens a connection or transaction only where it needs one (and commits it).
        """
        excluded: set[str] = set()
        for _ in range(3):  # options lost to other processes meanwhile: ask again without them
            options = await self.batcher.propose(query, excluded)
            if not options:
                break
            created = await self.hold(None, principal=principal, request=query, options=options)
            if created is not None:
                return created
            excluded |= {o.key for o in options}
        raise service.no_free_space(query)

    def free_spaces(self, **query: Any) -> list[dict[str, Any]] | None:
        """From memory, or None when the index is not loaded (callers then ask SQL)."""
        index = self._current_index()
        return None if index is None else index.nearest(**query)

    def free_page_json(self, after: Any = None, **query: Any) -> tuple[bytes, Any] | None:
        """One page of :meth:`free_spaces` as its JSON body, after a cursor, with the next page's cursor."""
        index = self._current_index()
        return None if index is None else index.page_json(after=after, **query)

    async def free_page(self, session: AsyncSession, query: service.AssignmentRequest, limit: int,
                        after: Any = None) -> tuple[list[dict[str, Any]], Any]:
        """:meth:`free_page_json`'s rows, from PostGIS in ``session`` while the index is not loaded."""
        index = self._current_index()
        if index is not None:
            body, nxt = index.page_json(after=after, **free_query(query, limit))
            return orjson.loads(body), nxt
        eligibility = await self.eligibility.get(session)
        return await service.free_page_sql(session, query, limit=limit, after=after, settings=self.settings,
                                           eligibility=eligibility)

    async def free_in_bbox(self, session: AsyncSession, bbox: tuple[float, float, float, float], *, limit: int,
                           accessible: bool, ev: bool,
                           after_id: str | None) -> tuple[list[dict[str, Any]], int | None, bool]:
        """Free spaces in ``bbox`` by id after ``after_id``: (page, total or None, more)."""
        index = self._current_index()
        if index is not None:
            page, total, more = index.in_bbox(bbox, limit=limit, accessible=accessible, ev=ev, after_id=after_id)
            return page, total, more
        eligibility = await self.eligibility.get(session)
        page, more = await service.free_in_bbox_sql(session, bbox, limit=limit, accessible=accessible, ev=ev,
                                                    after_id=after_id, settings=self.settings, eligibility=eligibility)
        return page, None, more

    def current_index(self) -> FreeIndex | None:
        """The index with the current eligibility applied, or None while it is not loaded
        (NGSI-LD spot queries read it too: ``app.standards.ngsi_ld.spot_index``)."""
        return self._current_index()

    def _current_index(self) -> FreeIndex | None:
        """The index with the current eligibility applied, or None while it is not loaded."""
        if not self.ready:
            return None
        self.index.apply(self.eligibility.current)
        return self.index


def free_query(query: service.AssignmentRequest, limit: int) -> dict[str, Any]:
    """The index's keyword arguments for ``query``."""
    return {"lat": query.lat, "lon": query.lon, "limit": limit, "radius_m": query.radius_m,
            "accessible": query.accessible, "ev": query.ev}


async def start(app: Any) -> None:
    """Startup hook: ``app.state.matching``; a gate count moved anywhere drops this process's
    facility snapshot (``app.state.facility_cache``)."""
    runtime = MatchingRuntime(app.state.settings, app.state.engine)
    cache = getattr(app.state, "facility_cache", None)
    if cache is not None:
        runtime.facility_listeners.append(lambda _ids: cache.invalidate())
    app.state.matching = runtime
    await runtime.start()


async def stop(app: Any) -> None:
    runtime: MatchingRuntime | None = getattr(app.state, "matching", None)
    if runtime is not None:
        await runtime.stop()


async def _no_reset(conn: asyncpg.Connection) -> None:
    """The hold writer's connections run single statements in implicit transactions and leave no
    session state (locks, LISTEN, settings) behind: asyncpg's reset round trip on every release
    would only cost a query."""
