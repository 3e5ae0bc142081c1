"""NGSI-LD errors: RFC 7807 ProblemDetails with the ETSI GS CIM 009 error type URIs.

They are domain errors (``kind`` is the citypark ``error`` word, kept in the body as an
extension member next to ``type``/``title``/``detail``), so the route layer renders them as
``application/problem+json`` and the rest of citypark still reads them as its usual errors.
"""

from __future__ import annotations

from typing import Any

from app.core.errors import DomainError

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiLdError(DomainError):
    """An NGSI-LD ProblemDetails: ``problem`` is the ETSI type name, ``status`` the HTTP status."""

    problem = "InternalError"
    status = 500
    kind = "error"

    def problem_details(self) -> dict[str, Any]:
        return {"type": ERRORS + self.problem, "title": _TITLES.get(self.problem, self.problem),
                "status": self.status, "detail": self.detail, "error": self.kind}


class BadRequestData(NgsiLdError):
    problem, status, kind = "BadRequestData", 400, "invalid_input"


class InvalidRequest(NgsiLdError):
    problem, status, kind = "InvalidRequest", 400, "invalid_input"


class ResourceNotFound(NgsiLdError):
    problem, status, kind = "ResourceNotFound", 404, "not_found"


class OperationNotSupported(NgsiLdError):
    problem, status, kind = "OperationNotSupported", 405, "method_not_allowed"


class NotAcceptable(NgsiLdError):
    problem, status, kind = "NotAcceptable", 406, "not_acceptable"


class AlreadyExists(NgsiLdError):
    problem, status, kind = "AlreadyExists", 409, "conflict"


class Unauthorized(NgsiLdError):
    problem, status, kind = "Unauthorized", 401, "unauthorized"


class Forbidden(NgsiLdError):
    problem, status, kind = "Forbidden", 403, "forbidden"


_TITLES = {
    "BadRequestData": "Bad request data", "InvalidRequest": "Invalid request",
    "ResourceNotFound": "Resource not found", "OperationNotSupported": "Operation not supported",
    "NotAcceptable": "Not acceptable", "AlreadyExists": "Already exists",
    "Unauthorized": "Unauthorized", "Forbidden": "Forbidden",
}
