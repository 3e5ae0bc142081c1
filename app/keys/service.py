"""API keys: created with 256 bits of randomness, stored as a SHA-256 hash, shown once."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput, NotFound
from app.inventory.models import Operator
from app.keys.models import ROLES, ApiKey

KEY_PREFIX = "cpk_"
# How long a process trusts a key it has authenticated without asking the database again.
# ``revoke_key`` sends ``NOTIFY api_keys`` with the key's id, which every process's listener
# (``app.keys.listener``) turns into ``forget_key`` at once. While a process's listener is
# connected it trusts a key for ``CITYPARK_KEY_CACHE_TTL_S`` (300 s); while it is not (starting,
# reconnecting, no listener at all) only for ``KEY_CACHE_TTL_S``, so a revocation made anywhere
# takes effect everywhere within that second even when a notification could be lost.
KEY_CACHE_TTL_S = 1.0
CHANNEL = "api_keys"
_KEY_CACHE_MAX = 10_000
MAX_HOLDS_LIMIT = 1_000_000  # the most a fleet key (or a benchmark's) may be given


@dataclass
class _Invalidation:
    live: bool = False  # a listener is connected: revocations arrive as notifications
    live_ttl_s: float = 300.0

    def ttl(self) -> float:
        return self.live_ttl_s if self.live else KEY_CACHE_TTL_S


_invalidation = _Invalidation()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and (for operator keys) operator."""

    key_id: uuid.UUID
    role: str
    operator_id: str | None
    max_holds: int | None = None  # a driver key's own cap on active holds (None: the setting's)


KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32)


def plausible_key(token: str) -> bool:
    """Shaped like a key this service makes (cheap, before any look-up)."""
    return len(token) == KEY_LENGTH and token.startswith(KEY_PREFIX)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    session: AsyncSession, *, role: str, operator_id: str | None = None, name: str | None = None,
    max_holds: int | None = None,
) -> tuple[str, ApiKey]:
    """Create a key; returns the plain key (never stored) and its row. Caller commits.

    ``max_holds`` (driver keys only): how many active holds the key may have at once, e.g. a
    fleet's; without it the setting ``max_holds_per_driver`` applies.
    """
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if (role == "operator") != (operator_id is not None):
        raise InvalidInput("an operator key needs --operator, and only an operator key takes one")
    if max_holds is not None and (role != "driver" or not 1 <= max_holds <= MAX_HOLDS_LIMIT):
        raise InvalidInput(f"--max-holds is for driver keys, between 1 and {MAX_HOLDS_LIMIT}")
    if operator_id is not None and await session.get(Operator, operator_id) is None:
        raise NotFound(f"unknown operator {operator_id!r}")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(key_hash=hash_key(plain), prefix=plain[:10], role=role,
                 operator_id=operator_id, name=name, max_holds=max_holds)
    session.add(row)
    await session.flush()
    return plain, row


async def authenticate(session: AsyncSession, *, key: str) -> Principal | None:
    """The principal of a valid, unrevoked key, else None."""
    row = (
        await session.execute(
            select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        )
    ).scalar_one_or_none()
    return Principal(row.id, row.role, row.operator_id, row.max_holds) if row else None


# key hash → (principal, monotonic time authenticated); only valid keys are cached, so a new key works at once.
_cache: dict[str, tuple[Principal, float]] = {}


async def authenticate_cached(session: AsyncSession, *, key: str) -> Principal | None:
    """:func:`authenticate`, remembered per process (see ``KEY_CACHE_TTL_S``)."""
    digest, now = hash_key(key), time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and now - hit[1] < _invalidation.ttl():
        return hit[0]
    principal = await authenticate(session, key=key)
    if principal is None:
        _cache.pop(digest, None)
    else:
        if len(_cache) >= _KEY_CACHE_MAX:
            _cache.clear()
        _cache[digest] = (principal, now)
    return principal


def cached_principal(key: str) -> Principal | None:
    """The principal of ``key`` if this process authenticated it recently enough (no database):
    within the cache TTL, and not revoked since as far as this process's listener has heard."""
    hit = _cache.get(hash_key(key))
    return hit[0] if hit is not None and time.monotonic() - hit[1] < _invalidation.ttl() else None


def forget_key(key_id: uuid.UUID) -> None:
    """Drop ``key_id`` from this process's cache (it was revoked, here or elsewhere)."""
    for digest in [d for d, (p, _) in _cache.items() if p.key_id == key_id]:
        _cache.pop(digest, None)


def set_invalidation_live(live: bool, *, ttl_s: float | None = None) -> None:
    """Called by the listener: notifications arrive (``live``) or may be missed (not).

    Any change empties the cache: what was revoked while no one listened is asked again."""
    _cache.clear()
    _invalidation.live = live
    if ttl_s is not None:
        _invalidation.live_ttl_s = ttl_s


def invalidation_live() -> bool:
    return _invalidation.live


async def revoke_key(session: AsyncSession, *, key_id: uuid.UUID) -> None:
    """Revoke a key: at once in this process; in the others when the transaction commits
    (``NOTIFY api_keys``, delivered on commit), or within ``KEY_CACHE_TTL_S`` without a listener."""
    forget_key(key_id)
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no active key {key_id}")
    await session.execute(select(func.pg_notify(CHANNEL, str(key_id))))
