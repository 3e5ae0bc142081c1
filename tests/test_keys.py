"""API keys are stored hashed and can be revoked."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput, NotFound
from app.keys import service as keys
from app.keys.models import ApiKey


async def test_key_is_stored_hashed_and_authenticates(db: AsyncSession) -> None:
    plain, row = await keys.create_key(db, role="operator", operator_id="tiedong-city")
    stored = (await db.execute(select(ApiKey.key_hash).where(ApiKey.id == row.id))).scalar_one()
    assert plain not in stored
    assert stored == keys.hash_key(plain)
    principal = await keys.authenticate(db, key=plain)
    assert principal is not None
    assert (principal.role, principal.operator_id) == ("operator", "tiedong-city")


async def test_revoked_and_wrong_keys_do_not_authenticate(db: AsyncSession) -> None:
    plain, row = await keys.create_key(db, role="driver")
    await keys.revoke_key(db, key_id=row.id)
    assert await keys.authenticate(db, key=plain) is None
    assert await keys.authenticate(db, key=plain + "x") is None


@pytest.mark.parametrize(
    ("role", "operator", "error"),
    [("pilot", None, InvalidInput), ("operator", None, InvalidInput),
     ("driver", "tiedong-city", InvalidInput), ("operator", "nobody", NotFound)],
)
async def test_bad_key_requests(db: AsyncSession, role: str, operator: str | None, error: type) -> None:
    with pytest.raises(error):
        await keys.create_key(db, role=role, operator_id=operator)
