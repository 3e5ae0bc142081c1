"""Group commit of space holds for ``POST /v1/assignments`` (one writer per API process).

Every request waiting is written by one ``INSERT … ON CONFLICT DO NOTHING`` against the
exclusion constraint, so under load one commit (and its fsync) is shared by many holds; the
database still decides every hold.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from app.assignments import service, sql
from app.core.settings import Settings

MAX_GROUP = 500  # holds per group-commit statement
WRITERS = 2  # group-commit statements in flight per process


class _Claim:
    """One request's space options for the writer, tried in order until one is held."""

    __slots__ = ("row", "options", "pos", "future")

    def __init__(self, row: tuple[Any, ...], options: list[service.Option],
                 future: asyncio.Future[dict[str, Any] | None]) -> None:
        self.row, self.options, self.pos, self.future = row, options, 0, future

    @property
    def option(self) -> service.Option:
        return self.options[self.pos]

    def resolve(self, value: dict[str, Any] | None) -> None:
        if not self.future.done():
            self.future.set_result(value)


class HoldWriter:
    """Group commit of space holds: every request waiting is written by one statement.

    Requests that arrive while a write is in flight join the next one, so under load a commit
    (and its fsync) is shared by many holds, and with none it costs one round trip as before.
    Each group is one ``INSERT_SPACE_HOLDS`` in its own implicit transaction; a request whose
    space was taken (by another process, or by an earlier claim in the group) moves to its next
    option in the next group. ``on_held`` / ``on_taken`` teach the free-space index.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings, on_held: Callable[[str, float], None],
                 on_taken: Callable[[str], None]) -> None:
        self.pool, self.on_held, self.on_taken = pool, on_held, on_taken
        self.hold_s, self.stale_s = float(settings.hold_seconds), float(settings.stale_after_s)
        self.pending: list[_Claim] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def hold(self, row: tuple[Any, ...], options: list[service.Option]) -> dict[str, Any] | None:
        """The ``201`` body of the first of ``options`` (spaces) held, or None if all are taken."""
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self.pending.append(_Claim(row, list(options), future))
        self._kick()
        return await future

    def _kick(self) -> None:
        if self.pending and self._running < WRITERS:
            self._running += 1  # counted now, uncounted as the drain ends: no request is left behind
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            while self.pending:
                claims, self.pending = self.pending[:MAX_GROUP], self.pending[MAX_GROUP:]
                try:
                    await self._write(claims)
                except Exception as exc:  # every waiting request gets the error, none hangs
                    for claim in claims:
                        if not claim.future.done():
                            claim.future.set_exception(exc)
        finally:
            self._running -= 1

    async def _write(self, claims: list[_Claim]) -> None:
        group = self._group(claims)
        if not group:
            return
        cols = list(zip(*(c.row for c in group), strict=True))
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql.INSERT_SPACE_HOLDS, cols[0], cols[1], [c.option.space_id for c in group],
                                    *cols[2:], self.hold_s, self.stale_s)
        won = {r["id"]: r for r in rows}
        for claim in group:
            got = won.get(claim.row[0])
            if got is not None:
                self.on_held(got["space_id"], got["expires_at"].timestamp())
                claim.resolve(service.created(got["id"], got["expires_at"], claim.option, claim.row[2], claim.row[3]))
                continue
            self.on_taken(claim.option.space_id or "")
            claim.pos += 1
            self._retry(claim)

    def _group(self, claims: list[_Claim]) -> list[_Claim]:
        """One claim per space: a later claim on a space already in the group takes its next option."""
        group, spaces = [], set()
        for claim in claims:
            while claim.pos < len(claim.options) and claim.option.space_id in spaces:
                claim.pos += 1
            if claim.pos < len(claim.options):
                spaces.add(claim.option.space_id)
                group.append(claim)
            else:
                claim.resolve(None)
        return group

    def _retry(self, claim: _Claim) -> None:
        if claim.pos < len(claim.options):
            claim.row = (uuid.uuid4(), *claim.row[1:])
            self.pending.append(claim)
        else:
            claim.resolve(None)
