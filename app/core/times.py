"""One way to write a moment in the API: RFC 3339 in UTC with ``Z`` (what FastAPI's response
models write), whichever path (route, fast path, export, stream) produced the answer."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(value: datetime) -> str:
    """``2026-11-30T00:38:30.484871Z`` for an aware datetime, in UTC."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cli_moment(text: str | None, default: datetime) -> datetime:
    """A command's ``--since``/``--until``: RFC 3339 (no offset = UTC), ``default`` when absent."""
    if text is None:
        return default
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        import typer  # only commands call this

        raise typer.BadParameter(f"{text!r} is not an RFC 3339 timestamp") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
