"""Inventory import: a GeoJSON FeatureCollection of facilities and spaces for one operator.

One code path for ``citypark import`` (a file, streamed) and ``PUT …/inventory`` (the body):
the features stream past an ijson parser and are validated one by one
(``app.inventory.validate``, an error names the feature); every ``CHUNK`` spaces the validated
rows are COPYed into staging tables, and once the file is through, whole-file checks and a dozen
set-based statements write it (``app.inventory.staging``). A city of 250,000 spaces costs the
same number of statements as a lot of 20; memory holds one chunk, not the file.

Written in the caller's transaction: an error anywhere — the last feature of a big file
too — leaves nothing written once the caller rolls back (the CLI and the API both do).
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import ijson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import geometry_input, ids
from app.core.errors import InvalidInput
from app.inventory import staging
from app.inventory.validate import (  # noqa: F401 (re-exported: the inventory's public models)
    MAX_SPACE_DISTANCE_M,
    Collector,
    FacilityProps,
    RuleIn,
    SpaceProps,
    check_timezone,
)
from app.occupancy.service import driver_connection

CHUNK = 20_000  # features validated between two COPYs (and between two progress steps)
READ_BYTES = 256 * 1024

# progress(phase, done, total): phase "read" counts bytes of the file, "write" the statements.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportResult:
    operator_id: str
    facilities: int
    spaces: int
    sensors: int
    rules: int
    warnings: tuple[str, ...] = ()


Source = dict[str, Any] | bytes | Path | IO[bytes]


async def import_inventory(
    session: AsyncSession, *, operator_id: str, doc: Source, operator_name: str | None = None,
    area: geometry_input.Bbox | None = None, progress: Progress | None = None,
) -> ImportResult:
    """Validate ``doc`` and upsert it for ``operator_id`` (the caller commits or rolls back).

    ``doc`` is a parsed FeatureCollection, the bytes of one, a path or a binary file (both
    streamed). ``area`` is the service area (``Settings.service_area_bbox``); None accepts
    anywhere. 3-D positions lose their ``z``, which ``ImportResult.warnings`` says.
    """
    ids.check(operator_id, "operator")
    await session.flush()
    await session.execute(text("SELECT 1"))  # asyncpg's transaction begins with the session's first statement
    conn = await driver_connection(session)  # the session's own connection, in its transaction
    result = await import_into(conn, operator_id=operator_id, doc=doc, operator_name=operator_name,
                               area=area, progress=progress)
    session.expire_all()  # written behind the ORM's back
    return result


async def import_into(
    conn: asyncpg.Connection, *, operator_id: str, doc: Source, operator_name: str | None = None,
    area: geometry_input.Bbox | None = None, progress: Progress | None = None,
) -> ImportResult:
    """``import_inventory`` on a plain asyncpg connection (inside the caller's transaction)."""
    collector = Collector(area=area)
    await staging.create(conn)
    with _Opened(doc) as (stream, size):
        stream_of = enumerate(features(doc, stream))
        # parsing and validation are CPU work: in a thread, so an API process keeps answering meanwhile
        while await asyncio.to_thread(_validate_chunk, collector, stream_of):
            await _flush(conn, collector)
            if progress is not None and stream is not None:
                progress("read", stream.tell(), size)
        await _flush(conn, collector)
        if progress is not None:
            progress("read", size, size)
    collector.finish()
    await staging.index(conn)
    await staging.check(conn, operator_id)
    await _upsert_operator(conn, operator_id, operator_name)
    await staging.write(conn, operator_id, step=(lambda d, t: progress("write", d, t)) if progress else None)
    await staging.check_stored_capacity(conn)
    await staging.drop(conn)
    return ImportResult(operator_id, len(collector.facilities), collector.n_spaces, collector.n_sensors,
                        collector.n_rules, collector.all_warnings())


def _validate_chunk(collector: Collector, stream_of: Iterator[tuple[int, Any]]) -> bool:
    """Validate up to ``CHUNK`` more features; whether the file has more."""
    for index, feature in stream_of:
        collector.add(index, feature)
        if (index + 1) % CHUNK == 0:
            return True
    return False


async def _flush(conn: asyncpg.Connection, collector: Collector) -> None:
    batch = collector.take()
    await staging.copy(conn, batch.facilities, batch.spaces, batch.rules)


async def _upsert_operator(conn: asyncpg.Connection, operator_id: str, name: str | None) -> None:
    await conn.execute(
        "INSERT INTO operators (id, name) VALUES ($1, coalesce($2, $1)) ON CONFLICT (id) DO UPDATE "
        "SET name = coalesce($2, operators.name)", operator_id, name)


class _Counting:
    """A binary stream that knows how far it has been read (``tell()``) for the progress bar."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner, self.done = inner, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.inner.read(size)
        self.done += len(chunk)
        return chunk

    def tell(self) -> int:
        return self.done


class _Opened:
    """The binary stream behind ``doc`` and its size; None for a parsed document."""

    def __init__(self, doc: Source) -> None:
        self.doc, self.owned = doc, False

    def __enter__(self) -> tuple[_Counting | None, int]:
        doc = self.doc
        if not isinstance(doc, bytes | Path) and not hasattr(doc, "read"):
            return None, 0  # a parsed document
        if isinstance(doc, bytes):
            raw: IO[bytes] = io.BytesIO(doc)
            size = len(doc)
        elif isinstance(doc, Path):
            raw, self.owned = doc.open("rb"), True
            size = doc.stat().st_size
        else:
            raw = doc  # type: ignore[assignment]
            size = os.fstat(doc.fileno()).st_size if hasattr(doc, "fileno") else 0
        self.raw = raw
        return _Counting(raw), size

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.raw.close()


def features(doc: Source, stream: _Counting | None) -> Iterator[Any]:
    """The features of a FeatureCollection, one at a time; InvalidInput if it is not one."""
    if stream is None:
        if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
            raise InvalidInput("inventory must be a GeoJSON FeatureCollection")
        listed = doc.get("features")
        if not isinstance(listed, list):
            raise InvalidInput("inventory has no features")
        yield from listed
        return
    yield from _streamed(stream)


def _streamed(stream: _Counting) -> Iterator[Any]:
    """Features of a JSON stream with ijson's C parser: the top-level ``type`` is read first
    (usually the first key: a few bytes), then the stream is rewound and the features parsed."""
    try:
        kind = next(ijson.items(stream, "type", buf_size=READ_BYTES), None)
        if kind != "FeatureCollection":
            raise InvalidInput("inventory must be a GeoJSON FeatureCollection")
        stream.inner.seek(0)
        stream.done = 0
        yield from ijson.items(stream, "features.item", use_float=True, buf_size=READ_BYTES)
    except ijson.JSONError as exc:
        raise InvalidInput(f"inventory is not JSON: {_one_line(exc)}") from None
    except UnicodeDecodeError:
        raise InvalidInput("inventory is not UTF-8 JSON") from None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "…"
