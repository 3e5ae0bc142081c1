"""Domain errors: plain exceptions with a machine-readable kind; no HTTP here.

``app/api/errors.py`` maps each class to a status code in one table.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of citypark's domain errors; ``kind`` is the stable ``error`` field of responses."""

    kind = "error"

    def __init__(self, detail: str, *, kind: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if kind is not None:
            self.kind = kind


class InvalidInput(DomainError):
    kind = "invalid_input"


class UnsupportedMediaType(InvalidInput):
    """A body in a format the endpoint does not read (e.g. ``text/plain`` where JSON is expected)."""

    kind = "unsupported_media_type"


class NotFound(DomainError):
    kind = "not_found"


class Forbidden(DomainError):
    kind = "forbidden"


class Unauthorized(DomainError):
    kind = "unauthorized"


class Conflict(DomainError):
    kind = "conflict"


class NoFreeSpace(Conflict):
    kind = "no_free_space"


class RateLimited(DomainError):
    kind = "rate_limited"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Unavailable(DomainError):
    kind = "unavailable"
