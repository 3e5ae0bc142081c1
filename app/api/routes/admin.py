"""Admin endpoints: create and revoke API keys (``citypark keys create`` over HTTP)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SessionDep, require_roles
from app.core import ids
from app.keys import service as keys_service
from app.keys.service import Principal

router = APIRouter(prefix="/v1/admin", tags=["admin"])

AdminKey = Annotated[Principal, Depends(require_roles("admin"))]


class KeyIn(BaseModel):
    model_config = ConfigDict(strict=True)

    role: Literal["driver", "operator", "enforcement", "manager", "admin"]
    operator_id: str | None = Field(default=None, min_length=1, max_length=ids.MAX_LEN, pattern=ids.PATTERN)
    name: str | None = Field(default=None, max_length=200)
    max_holds: int | None = Field(default=None, ge=1, le=keys_service.MAX_HOLDS_LIMIT, strict=True,
                                  description="driver keys: active holds allowed at once (a fleet's key); "
                                  "default CITYPARK_MAX_HOLDS_PER_DRIVER")


class KeyOut(BaseModel):
    id: uuid.UUID
    key: str = Field(description="the key itself: shown only in this response, stored hashed")
    prefix: str
    role: str
    operator_id: str | None
    name: str | None
    max_holds: int | None = None


@router.post("/keys", status_code=201, response_model=KeyOut, summary="Create an API key",
             responses={404: {"description": "unknown operator"}})
async def create_key(body: KeyIn, session: SessionDep, _: AdminKey) -> KeyOut:
    plain, row = await keys_service.create_key(
        session, role=body.role, operator_id=body.operator_id, name=body.name, max_holds=body.max_holds)
    return KeyOut(id=row.id, key=plain, prefix=row.prefix, role=row.role,
                  operator_id=row.operator_id, name=row.name, max_holds=row.max_holds)


@router.delete("/keys/{key_id}", status_code=204, response_class=Response, summary="Revoke an API key")
async def revoke_key(key_id: uuid.UUID, session: SessionDep, _: AdminKey) -> Response:
    await keys_service.revoke_key(session, key_id=key_id)
    return Response(status_code=204)
