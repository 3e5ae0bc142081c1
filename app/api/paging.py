"""The contract's "Lists" rule, in one place.

A list endpoint that caps its answer sends ``Link: <…>; rel="next"`` (RFC 8288) while more
items remain, and ``X-Total-Count`` where the total is cheap to know. The next link is
root-relative and keeps every other query parameter of the request; it carries either a
keyset ``cursor`` (opaque: base64url of a small JSON value, the position after the page's last
item in the list's order, so a client following ``next`` sees each item once even while items
come and go) or an ``offset`` where the order cannot change under the client (it depends on the
inventory only).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote, unquote_plus

import orjson
from starlette.requests import Request

from app.core.errors import InvalidInput

CURSOR_DESCRIPTION = "opaque position in the list: take it from the `Link: <…>; rel=\"next\"` header"
MAX_CURSOR = 1000  # characters
OPENAPI_HEADERS: dict[str, Any] = {
    "Link": {"description": 'RFC 8288 `<…>; rel="next"`: the next page, while more items remain',
             "schema": {"type": "string"}},
    "X-Total-Count": {"description": "how many items the whole list has (where cheap to know)",
                      "schema": {"type": "integer"}},
}


def encode_cursor(value: Any) -> str:
    """``value`` (JSON-able) as an opaque URL-safe token."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode("ascii")


def decode_cursor(token: str | None) -> Any:
    """The value of a token made by :func:`encode_cursor`; a bad token is a 422."""
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidInput("cursor: not a cursor of this list (take it from the Link header)") from None


def next_url(request: Request, **changes: str | None) -> str:
    """This request's root-relative URL with ``changes`` applied (None drops a parameter).

    The other parameters are kept as the client sent them (still percent-encoded): string work
    on the raw query, since the hot routes send this link on most answers."""
    raw = request.scope["query_string"].decode("latin-1")
    kept = [p for p in raw.split("&") if p and _name(p) not in changes]
    kept += [f"{k}={quote(v, safe='')}" for k, v in changes.items() if v is not None]
    return f"{request.scope.get('root_path', '')}{request.scope['path']}?{'&'.join(kept)}"


def _name(pair: str) -> str:
    name = pair.partition("=")[0]
    return unquote_plus(name) if "%" in name or "+" in name else name


def headers(request: Request, *, total: int | None = None, **next_changes: str | None) -> dict[str, str]:
    """``X-Total-Count`` (when ``total`` is known) and, when ``next_changes`` are given, the
    ``Link`` to the next page."""
    out: dict[str, str] = {}
    if total is not None:
        out["X-Total-Count"] = str(total)
    if next_changes:
        out["Link"] = f'<{next_url(request, **next_changes)}>; rel="next"'
    return out


def link_next(url: str) -> str:
    """A ``Link`` header value of one next page."""
    return f'<{url}>; rel="next"'
