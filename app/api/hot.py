"""Hot endpoints: one handler each, described by FastAPI but run without its per-request machinery.

The three busiest requests (``GET /v1/spaces/free``, ``GET /v1/facilities``, ``POST
/v1/assignments``) cost more in FastAPI's dependency solving, parameter validation and response
serialisation than in the answer itself. Each is one handler ``async (request) -> Response``
registered as a :func:`hot_route`: FastAPI still builds the OpenAPI description from the route's
declared ``endpoint`` signature (its query or body model, its key dependency, its response
model), but a request goes straight to the handler. The handler parses with the same pydantic
model that describes it (:func:`query` or :func:`json_body`), so the description, the accepted
input and the 422 message have one definition; it raises domain errors like any route, and the
app's error table answers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from app.core.errors import InvalidInput, UnsupportedMediaType

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


def hot_route(handler: Handler) -> type[APIRoute]:
    """A route class that answers every request with ``handler`` (use as ``route_class_override``)."""

    class HotRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            return handler

    HotRoute.__name__ = HotRoute.__qualname__ = f"HotRoute_{handler.__name__}"
    return HotRoute


def query(request: Request, model: type[M]) -> M:
    """The query string as ``model``; a parameter given twice or a bad value is a 422."""
    pairs = parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
    values = dict(pairs)
    if len(values) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidInput(f"query.{twice}: given more than once")
    return _validate(model, values, "query")


async def json_body(request: Request, model: type[M]) -> M:
    """The JSON body as ``model`` (strict types); another content type is a 415."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.partition(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json, not {media or 'nothing'}")
    return _validate(model, await request.body(), "body")


def _validate(model: type[M], data: Any, where: str) -> M:
    try:
        if isinstance(data, bytes):
            return model.model_validate_json(data or b"null", strict=True)
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(message(exc, where)) from None


def message(exc: ValidationError, where: str) -> str:
    """``body.lat: Input should be a valid number``: the first error, as the error table writes it."""
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in (where, *first.get("loc", ())))
    if first.get("type") in {"json_invalid", "json_type"}:
        return f"{where}: the body is not a JSON object"
    if first.get("type") == "model_type":
        return f"{where}: expected a JSON object"
    return f"{loc}: {first.get('msg')}"
