"""API keys: created with 256 bits of randomness, stored as a SHA-256 hash, shown once."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput, NotFound
from app.inventory.models import Operator
from app.keys.models import ROLES, ApiKey

KEY_PREFIX = "cpk_"
# How long a process trusts a key it has authenticated without asking the database again.
# A revocation made in this process takes effect at once (``revoke_key`` drops the entry); one
# made elsewhere (another process, the CLI, SQL) takes effect within this many seconds.
KEY_CACHE_TTL_S = 5.0
_KEY_CACHE_MAX = 10_000
MAX_HOLDS_LIMIT = 1_000_000  # the most a fleet key (or a benchmark's) may be given


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and (for operator keys) operator."""

    key_id: uuid.UUID
    role: str
    operator_id: str | None
    max_holds: int | None = None  # a driver key's own cap on active holds (None: the setting's)


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


# key hash → (principal, monotonic deadline); only valid keys are cached, so a new key works at once.
_cache: dict[str, tuple[Principal, float]] = {}


async def authenticate_cached(session: AsyncSession, *, key: str,
                              ttl_s: float = KEY_CACHE_TTL_S) -> Principal | None:
    """:func:`authenticate`, remembered for ``ttl_s`` per process (see ``KEY_CACHE_TTL_S``)."""
    digest, now = hash_key(key), time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[1] > now:
        return hit[0]
    principal = await authenticate(session, key=key)
    if principal is None:
        _cache.pop(digest, None)
    else:
        if len(_cache) >= _KEY_CACHE_MAX:
            _cache.clear()
        _cache[digest] = (principal, now + ttl_s)
    return principal


def cached_principal(key: str) -> Principal | None:
    """The principal of ``key`` if this process authenticated it within the TTL (no database)."""
    hit = _cache.get(hash_key(key))
    return hit[0] if hit is not None and hit[1] > time.monotonic() else None


def forget_key(key_id: uuid.UUID) -> None:
    """Drop ``key_id`` from this process's cache (it was revoked here)."""
    for digest in [d for d, (p, _) in _cache.items() if p.key_id == key_id]:
        _cache.pop(digest, None)


async def revoke_key(session: AsyncSession, *, key_id: uuid.UUID) -> None:
    """Revoke a key: at once in this process, within ``KEY_CACHE_TTL_S`` in the others."""
    forget_key(key_id)
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no active key {key_id}")
