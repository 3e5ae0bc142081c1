"""API keys: created with 256 bits of randomness, stored as a SHA-256 hash, shown once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput, NotFound
from app.models import ApiKey, Operator
from app.models.keys import ROLES

KEY_PREFIX = "cpk_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and (for operator keys) operator."""

    key_id: uuid.UUID
    role: str
    operator_id: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    session: AsyncSession, *, role: str, operator_id: str | None = None, name: str | None = None
) -> tuple[str, ApiKey]:
    """Create a key; returns the plain key (never stored) and its row. Caller commits."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if (role == "operator") != (operator_id is not None):
        raise InvalidInput("an operator key needs --operator, and only an operator key takes one")
    if operator_id is not None and await session.get(Operator, operator_id) is None:
        raise NotFound(f"unknown operator {operator_id!r}")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(key_hash=hash_key(plain), prefix=plain[:10], role=role,
                 operator_id=operator_id, name=name)
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
    return Principal(row.id, row.role, row.operator_id) if row else None


async def revoke_key(session: AsyncSession, *, key_id: uuid.UUID) -> None:
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no active key {key_id}")
