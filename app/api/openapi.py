"""Keep the OpenAPI description truthful about errors, for every route of every module.

Every error body is ``{"error", "detail"}`` (``app/api/errors.py``), but FastAPI documents its
own validation shape for 422 and nothing for 401/403/404/413/429. ``install(app)`` rewrites
the generated schema once: the ``Error`` component replaces FastAPI's 422 body, and each
operation gains the error statuses it can produce — 401/403 where it takes a key, 404 where
the path has parameters, 413 where it takes a body, 429 under the rate-limited ``/v1/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable kind, e.g. not_found"},
        "detail": {"type": "string", "description": "human-readable explanation"},
    },
}
_REF = {"$ref": "#/components/schemas/Error"}
DESCRIPTIONS = {
    401: "no key, an unknown key or a revoked key",
    403: "this key's role or operator may not do this",
    404: "not found",
    413: "request body larger than the limit",
    422: "invalid parameter or body",
    429: "rate limited; see Retry-After",
}
# For routes that want to declare their errors themselves (``responses=ERROR_RESPONSES``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": _REF}}}
    for status, text in DESCRIPTIONS.items() if status == 422
}


def install(app: FastAPI) -> None:
    """Post-process ``app.openapi()`` once, as described in the module docstring."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            add_error_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_error_responses(schema: dict[str, Any]) -> None:
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                _add(operation, _statuses(path, operation))


def _statuses(path: str, operation: dict[str, Any]) -> list[int]:
    statuses = [422]
    if operation.get("security"):
        statuses += [401, 403]
    if "{" in path:
        statuses.append(404)
    if "requestBody" in operation:
        statuses.append(413)
    if path.startswith("/v1/"):
        statuses.append(429)
    return statuses


def _add(operation: dict[str, Any], statuses: list[int]) -> None:
    responses = operation.setdefault("responses", {})
    for status in statuses:
        entry = responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
        entry["content"] = {**entry.get("content", {}), "application/json": {"schema": _REF}}
