"""``citypark import-history FILE --operator OP``: a CSV of past counts or sensor events.

The file is read in chunks; every row goes through the live input's validation
(:mod:`app.history.rows` → ``messages.validate``), accepted rows are streamed with binary COPY
into a temporary staging table, and at the end one set-based statement moves them into
``count_events`` / ``occupancy_events`` (``ON CONFLICT DO NOTHING``: a reading already stored,
or repeated in the file, is stored once). The monthly history partitions the file needs are
created first (``citypark_ensure_month_partitions``, migration 0001), for any month since 2000.
The newest reading of each facility or space then goes through ``occupancy.write_batch``, the
live write path, so current state only moves forward and listeners are notified.

All of it runs in the caller's transaction: a file with a rejected row writes nothing (the
caller rolls back) unless ``skip_bad``, in which case the good rows are written and the
rejections stored in ``rejected_messages`` (source ``import``) like live ones.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from app.history.rows import Layout, layout, to_message
from app.occupancy import service as occupancy
from app.occupancy.messages import Count, Directory, Occupancy, Rejected, Rejection, validate

CHUNK_ROWS = 50_000
SHOWN_REJECTIONS = 20
STORED_REJECTIONS = 10_000  # kept in rejected_messages (with --skip-bad); the rest are counted
STAGE = {
    "counts": ("history_stage", ["facility_id", "observed_at", "free", "total"],
               "facility_id text, observed_at timestamptz, free int4, total int4"),
    "events": ("history_stage", ["sensor_id", "observed_at", "seq", "space_id", "occupied"],
               "sensor_id text, observed_at timestamptz, seq int8, space_id text, occupied bool"),
}
INSERT = {
    "counts": """
INSERT INTO count_events (facility_id, observed_at, free, total, source)
SELECT DISTINCT ON (facility_id, observed_at) facility_id, observed_at, free, total, 'import'
FROM history_stage ORDER BY facility_id, observed_at
ON CONFLICT (facility_id, observed_at) DO NOTHING""",
    "events": """
INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied, source)
SELECT DISTINCT ON (sensor_id, observed_at, seq) sensor_id, observed_at, seq, space_id, occupied, 'import'
FROM history_stage ORDER BY sensor_id, observed_at, seq
ON CONFLICT (sensor_id, observed_at, seq) DO NOTHING""",
}
NEWEST = {
    "counts": """SELECT DISTINCT ON (facility_id) facility_id, observed_at, free, total FROM history_stage
                 ORDER BY facility_id, observed_at DESC""",
    "events": """SELECT DISTINCT ON (space_id) sensor_id, observed_at, seq, space_id, occupied FROM history_stage
                 ORDER BY space_id, observed_at DESC, seq DESC NULLS LAST""",
}
TABLE = {"counts": "count_events", "events": "occupancy_events"}

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class ImportReport:
    """What an import read, accepted, stored and rejected (and why)."""

    kind: str = ""
    rows: int = 0
    accepted: int = 0
    inserted: int = 0
    duplicates_in_file: int = 0
    already_stored: int = 0
    partitions_made: int = 0
    first: datetime | None = None
    last: datetime | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)  # (line, "reason: detail"), the first few
    stored: list[tuple[int, str, str]] = field(default_factory=list, repr=False)  # + the row, for rejected_messages
    written: bool = False

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())


class ImportFailed(Exception):
    """The file cannot be imported as a whole (bad header, or rejected rows without skip_bad)."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


async def import_history(conn: asyncpg.Connection, path: Path, *, operator_id: str, skip_bad: bool = False,
                         max_clock_skew_s: float = 300.0, progress: Progress | None = None,
                         now: datetime | None = None) -> ImportReport:
    """Import one CSV file in the caller's transaction (see the module docstring).

    Raises :class:`ImportFailed` (carrying the report) when the header is wrong or, without
    ``skip_bad``, when any row is rejected; the caller then rolls back.
    """
    report = ImportReport()
    now = now or datetime.now(UTC)
    total_bytes = path.stat().st_size
    with path.open("r", encoding="utf-8", newline="", errors="replace") as handle:
        reader = csv.reader(_counting(handle, report_bytes := [0]))
        try:
            lay = layout(next(reader))
        except (StopIteration, ValueError) as exc:
            raise ImportFailed(f"{path.name}: {exc or 'empty file'}", report) from None
        report.kind = lay.kind
        table, columns, ddl = STAGE[lay.kind]
        await conn.execute(f"CREATE TEMP TABLE {table} ({ddl}) ON COMMIT DROP")
        context = await _Context.load(conn, operator_id, lay)
        for chunk in _chunks(reader):
            records = await _validate_chunk(conn, chunk, lay, context, report, now, max_clock_skew_s)
            await conn.copy_records_to_table(table, records=records, columns=columns)
            report.accepted += len(records)
            if progress:
                progress("read", report_bytes[0], total_bytes)
    if report.rejected and not skip_bad:
        raise ImportFailed(f"{report.rejected} of {report.rows} rows rejected; nothing imported "
                           "(--skip-bad imports the others)", report)
    await _store(conn, lay, report, progress, path.name)
    report.written = True
    return report


def _counting(handle: io.TextIOBase, done: list[int]) -> Iterator[str]:
    for line in handle:
        done[0] += len(line)
        yield line


def _chunks(reader: Any) -> Iterator[list[tuple[int, list[str]]]]:
    chunk: list[tuple[int, list[str]]] = []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank lines
        chunk.append((reader.line_num, row))
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class _Context:
    operator_id: str
    directory: Directory
    zones: dict[str, ZoneInfo]
    capacities: dict[str, int]

    @classmethod
    async def load(cls, conn: asyncpg.Connection, operator_id: str, lay: Layout) -> _Context:
        """Zones (and capacities) of this operator's facilities, keyed as the file is."""
        if lay.kind == "counts":
            rows = await conn.fetch("SELECT id, timezone, capacity FROM facilities WHERE operator_id = $1",
                                    operator_id)
        else:
            rows = await conn.fetch(
                "SELECT s.id, f.timezone, f.capacity FROM sensors s JOIN spaces sp ON sp.id = s.space_id "
                "JOIN facilities f ON f.id = sp.facility_id WHERE s.operator_id = $1", operator_id)
        cache: dict[str, ZoneInfo] = {}
        zones = {r["id"]: cache.setdefault(r["timezone"], ZoneInfo(r["timezone"])) for r in rows}
        return cls(operator_id, Directory(max_age_s=1e12), zones, {r["id"]: r["capacity"] for r in rows})


async def _validate_chunk(conn: asyncpg.Connection, chunk: list[tuple[int, list[str]]], lay: Layout,
                          ctx: _Context, report: ImportReport, now: datetime, skew: float) -> list[tuple[Any, ...]]:
    col = lay.index[lay.id_column]
    ids = sorted({row[col].strip() for _, row in chunk if len(row) > col})
    known = ctx.directory.sensors if lay.kind == "events" else ctx.directory.facilities
    if missing := [i for i in ids if i not in known]:
        await ctx.directory.fetch(conn, **{"sensor_ids" if lay.kind == "events" else "facility_ids": missing})
    records: list[tuple[Any, ...]] = []
    for line, row in chunk:
        report.rows += 1
        try:
            message = to_message(row, lay, operator_id=ctx.operator_id, zones=ctx.zones,
                                 capacities=ctx.capacities)
            event = validate(message, directory=ctx.directory, now=now, max_clock_skew_s=skew, source="import")
        except Rejected as rej:
            report.reasons[rej.reason] += 1
            if len(report.examples) < SHOWN_REJECTIONS:
                report.examples.append((line, rej.stored_reason))
            if len(report.stored) < STORED_REJECTIONS:
                report.stored.append((line, rej.stored_reason, ",".join(row)))
            continue
        records.append(_record(event))
        at = event.observed_at
        report.first = at if report.first is None or at < report.first else report.first
        report.last = at if report.last is None or at > report.last else report.last
    return records


def _record(event: Any) -> tuple[Any, ...]:
    if isinstance(event, Count):
        return (event.facility_id, event.observed_at, event.free, event.total)
    assert isinstance(event, Occupancy)
    return (event.sensor_id, event.observed_at, event.seq, event.space_id, event.occupied)


async def _store(conn: asyncpg.Connection, lay: Layout, report: ImportReport, progress: Progress | None,
                 path_name: str) -> None:
    if not report.accepted:
        return
    assert report.first is not None
    assert report.last is not None
    report.partitions_made = await conn.fetchval(
        "SELECT citypark_ensure_month_partitions($1, $2::date, $3::date)", TABLE[lay.kind],
        report.first.date(), report.last.date())
    if progress:
        progress("store", 0, report.accepted)
    distinct_key = "facility_id, observed_at" if lay.kind == "counts" else "sensor_id, observed_at, seq"
    distinct = await conn.fetchval(f"SELECT count(*) FROM (SELECT DISTINCT {distinct_key} FROM history_stage) d")
    await conn.execute("SET LOCAL jit = off")  # JIT compiles a many-partition plan for seconds
    status = await conn.execute(INSERT[lay.kind])
    report.inserted = int(status.rsplit(" ", 1)[-1])
    report.duplicates_in_file = report.accepted - distinct
    report.already_stored = distinct - report.inserted
    rejections = [Rejection(f"import:{path_name}:{line}", raw, reason, "import")
                  for line, reason, raw in report.stored]
    await occupancy.write_batch(conn, _newest(lay, await conn.fetch(NEWEST[lay.kind])), rejections=rejections)
    if progress:
        progress("store", report.accepted, report.accepted)


def _newest(lay: Layout, rows: Sequence[asyncpg.Record]) -> list[Count | Occupancy]:
    """Each facility's or space's newest imported reading, for the live write path."""
    if lay.kind == "counts":
        return [Count(r["facility_id"], r["free"], r["observed_at"], r["total"], "import") for r in rows]
    return [Occupancy(r["sensor_id"], r["space_id"], r["occupied"], r["observed_at"], r["seq"], None, "import")
            for r in rows]
