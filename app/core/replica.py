"""Availability reads from a streaming replica (``CITYPARK_DATABASE_READ_URL``), holds and writes
on the primary.

``ReadRouter`` checks the replica every ``CHECK_S``: is it reachable, is it a standby, and how
far behind the primary it is. The lag is measured in time from WAL positions, not from
``pg_last_xact_replay_timestamp()`` (which grows on an idle primary and says nothing about a
replica that stopped receiving): the router samples the primary's ``pg_current_wal_lsn()``
each check, and a replica whose replayed position is behind a position the primary had
reached ``t`` seconds ago is at least ``t`` seconds behind. While the replica is reachable, a
standby, and at most ``CITYPARK_READ_MAX_LAG_S`` behind, reads go to it; otherwise to the
primary, and ``/readyz`` says which and why (the API stays ready: the primary serves).
A read that fails on the replica mid-request is retried once on the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.db import create_engine, create_sessionmaker
from app.core.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)
CHECK_S = 0.5
SAMPLES_S = 600.0  # primary positions kept to date the replica's
PRIMARY_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
REPLICA_SQL = "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"


@dataclass(frozen=True)
class ReplicaState:
    use: bool  # reads go to the replica
    detail: str  # ok, unreachable, not a standby, lagging …, not checked yet
    lag_s: float | None


class ReadRouter:
    def __init__(self, settings: Settings, primary: AsyncEngine) -> None:
        self.settings = settings
        self.max_lag_s = settings.read_max_lag_s
        self.primary = create_sessionmaker(primary)
        self.url = settings.database_read_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.engine = create_engine(settings, url=self.url) if self.url else None
        self.replica = create_sessionmaker(self.engine) if self.engine is not None else None
        self.state = ReplicaState(False, "not checked yet", None)
        self._samples: deque[tuple[float, int]] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def configured(self) -> bool:
        return self.replica is not None

    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.replica if self.replica is not None and self.state.use else self.primary

    def start(self) -> None:
        if self.configured:
            self._task = asyncio.create_task(self._loop(), name="read-replica-check")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.engine is not None:
            await self.engine.dispose()

    async def _loop(self) -> None:
        conns: dict[str, asyncpg.Connection | None] = {"primary": None, "replica": None}
        try:
            while True:
                self._set(await self._check(conns))
                await asyncio.sleep(CHECK_S)  # the check interval
        finally:
            for conn in conns.values():
                if conn is not None:
                    conn.terminate()

    async def _check(self, conns: dict[str, asyncpg.Connection | None]) -> ReplicaState:
        now = time.monotonic()
        with contextlib.suppress(Exception):  # the primary's own health is /readyz's database check
            primary = await self._fetch(conns, "primary", self.settings.listen_dsn, PRIMARY_SQL)
            self._samples.append((now, int(primary)))
        while self._samples and self._samples[0][0] < now - SAMPLES_S:
            self._samples.popleft()
        try:
            standby, replayed = await self._fetch(conns, "replica", self.url, REPLICA_SQL, row=True)
        except Exception:
            return ReplicaState(False, "unreachable", None)
        if not standby:
            return ReplicaState(False, "not a standby (promoted?): reads stay on the primary", None)
        lag = self.lag_s(int(replayed or 0), now)
        if lag > self.max_lag_s:
            return ReplicaState(False, f"lagging {lag:.1f} s behind (max {self.max_lag_s:g} s)", lag)
        return ReplicaState(True, "ok", lag)

    def lag_s(self, replayed: int, now: float) -> float:
        """Seconds since the primary first stood past ``replayed`` (0 when the replica is level)."""
        behind = [t for t, lsn in self._samples if lsn > replayed]
        return now - behind[0] if behind else 0.0

    async def _fetch(self, conns: dict[str, asyncpg.Connection | None], name: str, dsn: str, sql: str,
                     *, row: bool = False) -> Any:
        conn = conns[name]
        try:
            if conn is None or conn.is_closed():
                conn = conns[name] = await asyncpg.connect(dsn, timeout=2, statement_cache_size=0)
            return await (conn.fetchrow(sql, timeout=2) if row else conn.fetchval(sql, timeout=2))
        except Exception:
            if conn is not None:
                conn.terminate()
            conns[name] = None
            raise

    def _set(self, state: ReplicaState) -> None:
        if state.use != self.state.use or (state.detail != self.state.detail and not state.use):
            (log.info if state.use else log.warning)("read replica: %s; availability reads from the %s",
                                                     state.detail, "replica" if state.use else "primary")
        self.state = state

    def readiness(self) -> dict[str, Any]:
        """For ``/readyz``: where reads go and why (no exception text)."""
        lag = None if self.state.lag_s is None else round(self.state.lag_s, 1)
        return {"ok": self.state.use, "reads": "replica" if self.state.use else "primary",
                "detail": self.state.detail, "lag_s": lag}

    def went_down(self) -> None:
        self.state = ReplicaState(False, "unreachable", None)


_CONNECTION_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                      OperationalError, InterfaceError, DBAPIError)


async def run_read(state: Any, body: Callable[[AsyncSession], Awaitable[T]],
                   session: AsyncSession | None = None) -> T:
    """``body`` in a read-only session: on the replica while it is fresh, else on the primary
    (``session``, the request's own, when given: it sees the request's transaction)."""
    router: ReadRouter | None = getattr(state, "reads", None)
    if router is None or router.replica is None or not router.state.use:
        if session is not None:
            return await body(session)
        async with state.sessionmaker() as own:
            return await body(own)
    try:
        async with router.replica() as replica_session:
            return await body(replica_session)
    except _CONNECTION_ERRORS as exc:
        if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
            router.went_down()  # until the next check says otherwise
        log.warning("read on the replica failed (%s); retried on the primary", type(exc).__name__)
        if session is not None:
            return await body(session)
        async with router.primary() as own:
            return await body(own)
