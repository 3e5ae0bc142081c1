"""Request dependencies: settings, a session per request (the transaction boundary), auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, Unauthorized
from app.core.settings import Settings
from app.core.text import a_or_an
from app.keys import service as keys_service
from app.keys.service import Principal

bearer = HTTPBearer(auto_error=False, description="An API key made with `citypark keys create`")


async def get_settings(request: Request) -> Settings:  # async: a sync dependency costs a thread hop
    settings: Settings = request.app.state.settings
    return settings


@asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: a session committed when the block ends, rolled back on error.

    Routes get it as ``SessionDep``; hot handlers (``app.api.hot``) open it themselves. An app may
    replace it with ``app.state.transaction`` (the tests run requests in one rolled-back
    connection), and both kinds of handler then use the replacement.
    """
    replacement = getattr(request.app.state, "transaction", None)
    if replacement is not None:
        async with replacement() as session:
            yield session
        return
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: :func:`transaction`."""
    async with transaction(request) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_principal(session: SessionDep, credentials: CredentialsDep) -> Principal | None:
    """The caller's principal; None without a key; 401 for an unknown or revoked key.

    Valid keys are remembered per process (``app.keys.service``); a revocation made by any
    process reaches this one by ``NOTIFY api_keys`` (``app.keys.listener``), within a second.
    """
    if credentials is None:
        return None
    principal = await keys_service.authenticate_cached(session, key=credentials.credentials)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(get_principal)]


async def principal_of(request: Request, *roles: str) -> Principal:
    """What ``require_roles(*roles)`` admits, for hot handlers that take the bare Request."""
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    if not key or scheme.lower() != "bearer":
        return admit(None, roles)
    principal = keys_service.cached_principal(key)
    if principal is None:
        async with transaction(request) as session:
            principal = await keys_service.authenticate_cached(session, key=key)
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
    return admit(principal, roles)


def admit(principal: Principal | None, roles: tuple[str, ...]) -> Principal:
    """The principal if it holds one of ``roles`` (admin always does); 401 without one, else 403."""
    if principal is None:
        raise Unauthorized("this endpoint needs an API key (Authorization: Bearer …)")
    if principal.role not in roles and principal.role != "admin":
        raise Forbidden(f"{a_or_an(principal.role)} key may not call this endpoint")
    return principal


def require_roles(*roles: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency admitting only keys of ``roles`` (admin is always admitted)."""

    async def dependency(principal: OptionalPrincipal) -> Principal:
        return admit(principal, roles)

    return dependency


def require_operator_of(operator_id: str, principal: Principal) -> None:
    """An operator key acts only on its own operator's data (admins on all)."""
    if principal.role != "admin" and principal.operator_id != operator_id:
        raise Forbidden("this key belongs to another operator")
