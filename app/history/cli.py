"""The ``citypark import-history`` command: progress bar on a terminal, a summary at the end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from app.core.db import raw_connection
from app.core.settings import Settings, get_settings
from app.history import service
from app.history.service import ImportFailed, ImportReport


def import_history(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV with a header")],
    operator: Annotated[str, typer.Option(help="operator id the facilities or sensors belong to")],
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="import the good rows, skip rejected ones")] = False,
) -> None:
    """Import past facility counts or sensor events from CSV, validated like live input."""
    console = Console(stderr=True)
    report = asyncio.run(_run(get_settings(), file, operator, skip_bad, console))
    typer.echo(summary(report))
    if not report.written:
        raise typer.Exit(1)


async def _run(settings: Settings, file: Path, operator: str, skip_bad: bool, console: Console) -> ImportReport:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                   console=console, disable=not console.is_terminal, transient=False)
    tasks: dict[str, TaskID] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task({"read": "validating", "store": "storing"}[phase], total=total)
        bar.update(tasks[phase], completed=done, total=total)

    async with raw_connection(settings) as conn:
        with bar:
            try:
                async with conn.transaction():
                    return await service.import_history(conn, file, operator_id=operator, skip_bad=skip_bad,
                                                        max_clock_skew_s=settings.max_clock_skew_s,
                                                        progress=progress)
            except ImportFailed as exc:
                console.print(f"error: {exc}")
                return exc.report


def summary(report: ImportReport) -> str:
    """The lines printed at the end of an import."""
    lines = [f"{report.kind or 'file'}: {report.rows} rows read, {report.accepted} accepted, "
             f"{report.rejected} rejected"]
    if report.written:
        lines.append(f"stored {report.inserted} new, {report.duplicates_in_file} duplicates in the file and "
                     f"{report.already_stored} already stored skipped, {report.partitions_made} partitions made")
    else:
        lines.append("nothing imported")
    if report.first and report.last:
        lines.append(f"observed from {report.first.isoformat()} to {report.last.isoformat()}")
    for reason, n in report.reasons.most_common():
        lines.append(f"  rejected {n:>8} × {reason}")
    for line, reason in report.examples:
        lines.append(f"  line {line}: {reason}")
    return "\n".join(lines)
