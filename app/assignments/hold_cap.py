"""A cap on the active holds of one driver key (issue 18: one key could hold half the district).

A driver key may have at most ``Settings.max_holds_per_driver`` (default 1) assignments
``held`` or ``reassigned`` and unexpired at once; a key created with ``max_holds`` (a fleet's,
``citypark keys create --role driver --max-holds N``) has its own cap. Admin keys are not
capped. One more is refused with ``Conflict`` of kind ``hold_limit`` (409).

Within a process, the requests of one key are counted one at a time (a lock per key around the
count), and a request admitted but whose hold is not written yet counts as a hold, so concurrent
requests cannot all see room for one more while a fleet key's requests still run concurrently
(a batch window is not waited out once per request). Below its cap, a key's count read in the
last second plus the requests this process admitted since stands in for a new count (a fleet
key's count is not re-read per request); at the cap it is always read afresh, so a cancelled or
expired hold frees room at once and a refusal always rests on a fresh count. A request
with a session (the route) also takes a transaction-scoped advisory lock on the key, held until
it commits, so its hold is counted by the next request in any process. The fast path (no
session; its holds are committed before it answers) reads the count without that lock:
requests of one key racing on it in different processes may each pass once within that second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.keys.service import Principal

KIND = "hold_limit"
# below its cap a key's count is trusted this long (plus what this process admitted since);
# at the cap it is always counted afresh, so a refusal is never based on an old count
COUNT_TTL_S = 1.0
COUNT_ACTIVE = ("SELECT count(*) FROM assignments WHERE key_id = $1 "
                "AND status IN ('held', 'reassigned') AND upper(hold) > now()")
_COUNT_ACTIVE_SQLA = text(COUNT_ACTIVE.replace("$1", ":key_id"))
_LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtext('citypark-hold-cap:' || :key))")


def cap_of(principal: Principal, default: int) -> int | None:
    """How many active holds ``principal`` may have; None for keys that are not capped."""
    if principal.role != "driver":
        return None
    return principal.max_holds if principal.max_holds is not None else default


class KeyLocks:
    """One asyncio lock per key that has a request in flight (forgotten when none has), and the
    number of that key's admitted requests whose hold is not written yet."""

    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, tuple[asyncio.Lock, int]] = {}
        self.in_flight: dict[uuid.UUID, int] = {}
        # the fast path's last count per key: (when it was read, holds then + admitted since)
        self.seen: dict[uuid.UUID, tuple[float, int]] = {}

    @asynccontextmanager
    async def hold(self, key_id: uuid.UUID) -> AsyncIterator[None]:
        lock, users = self._locks.get(key_id, (asyncio.Lock(), 0))
        self._locks[key_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key_id]
            if users <= 1:
                del self._locks[key_id]
            else:
                self._locks[key_id] = (lock, users - 1)


async def active_holds(runtime: Any, session: AsyncSession | None, key_id: uuid.UUID) -> int:
    """The key's active holds, read in ``session`` or on the runtime's own connections."""
    if session is not None:
        return int((await session.execute(_COUNT_ACTIVE_SQLA, {"key_id": key_id})).scalar_one())
    writer = getattr(runtime, "writer", None)
    if writer is not None:
        return int(await writer.pool.fetchval(COUNT_ACTIVE, key_id))
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(_COUNT_ACTIVE_SQLA, {"key_id": key_id})).scalar_one())


def _locks_of(runtime: Any) -> KeyLocks:
    locks = getattr(runtime, "hold_cap_locks", None)
    if locks is None:
        locks = KeyLocks()
        runtime.hold_cap_locks = locks
    return locks


@asynccontextmanager
async def admitted(runtime: Any, session: AsyncSession | None, principal: Principal) -> AsyncIterator[None]:
    """Run the body (which places one hold) only if ``principal`` has room for one more hold.

    ``Conflict`` (kind ``hold_limit``) if it has not. With a session the key's other requests in
    this process wait until the body is done; without one (the fast path) they wait only for the
    count, and the bodies admitted but not done yet count as holds.
    """
    cap = cap_of(principal, runtime.settings.max_holds_per_driver)
    if cap is None:
        yield
        return
    locks = _locks_of(runtime)
    key = principal.key_id
    if session is not None:  # the route: admitted one at a time, to the request's commit
        async with locks.hold(key):
            await session.execute(_LOCK_KEY, {"key": str(key)})  # held to the commit
            _refuse_over(await active_holds(runtime, session, key), cap)
            yield
        return
    # the fast path: the lock covers only the count; the key's admitted requests that have not
    # written their hold yet count as holds, so a fleet key's requests run concurrently
    async with locks.hold(key):
        now = time.monotonic()
        read_at, held = locks.seen.get(key, (-COUNT_TTL_S, cap))
        if now - read_at >= COUNT_TTL_S or held >= cap:  # at the cap, or old: count afresh
            read_at, held = now, await active_holds(runtime, None, key) + locks.in_flight.get(key, 0)
        _refuse_over(held, cap)
        if len(locks.seen) > 10_000:
            locks.seen = {k: v for k, v in locks.seen.items() if now - v[0] < COUNT_TTL_S}
        locks.seen[key] = (read_at, held + 1)
        locks.in_flight[key] = locks.in_flight.get(key, 0) + 1
    try:
        yield  # places the hold and commits it before it returns
    finally:
        left = locks.in_flight[key] - 1
        if left:
            locks.in_flight[key] = left
        else:
            del locks.in_flight[key]


def _refuse_over(held: int, cap: int) -> None:
    if held >= cap:
        raise Conflict(
            f"this key already has {held} active hold{'s' if held != 1 else ''} (at most {cap}): "
            "cancel one (POST /v1/assignments/{id}/cancel) or let it expire", kind=KIND)
