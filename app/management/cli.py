"""``citypark pricing report`` (the recommendations as CSV, for council papers) and
``citypark rollup`` (keep the management rollups current: once, or every S seconds)."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.csv_export import rows_to_csv
from app.core.db import in_session
from app.core.settings import get_settings
from app.core.times import cli_moment
from app.management import pricing, rollups
from app.management.utilization import Period

pricing_cli = typer.Typer(help="demand-responsive pricing (SFpark rule)", no_args_is_help=True)


@pricing_cli.callback()
def _group() -> None:
    """Demand-responsive pricing (SFpark rule): ``citypark pricing report``."""


@pricing_cli.command("report")
def report(
    since: Annotated[str | None, typer.Option(help="RFC 3339; default until − 28 days")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339; default now")] = None,
    target: Annotated[str, typer.Option(help="target occupancy band, percent")] = "60-80",
    step: Annotated[float, typer.Option(min=0.01, help="fee step per change")] = 0.5,
    min_fee: Annotated[float, typer.Option("--min", min=0, help="floor")] = 0.0,
    max_fee: Annotated[float, typer.Option("--max", min=0, help="cap")] = 20.0,
    period_days: Annotated[int, typer.Option(min=0, help="at most one change per this many days")] = 28,
    out: Annotated[Path | None, typer.Option(help="CSV file to write (default: standard output)")] = None,
    record: Annotated[bool, typer.Option(help="record the recommended changes as made now")] = False,
) -> None:
    """Write the pricing recommendations as CSV (UTF-8 with BOM, opens in Excel)."""
    settings = get_settings()
    low, high = pricing.parse_target(target)
    rule = pricing.Rule(low=low, high=high, step=step, floor=min_fee, cap=max_fee, period_days=period_days)
    now = datetime.now(UTC)
    end = rollups.ceil_hour(cli_moment(until, now))
    start = rollups.floor_hour(cli_moment(since, end - timedelta(days=28)))

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], int]:
        done = await rollups.refresh(session, now=now, hold_s=settings.management_hold_s)
        period = Period(start, max(start, min(end, done.watermark or start)))
        items = await pricing.recommendations(session, period=period, rule=rule, as_of=period.until)
        recorded = await pricing.record(session, items=items, at=now) if record else 0
        return items, recorded

    items, recorded = asyncio.run(in_session(settings, work))
    text_out = "\ufeff" + "".join(rows_to_csv(items, pricing.COLUMNS))
    if out is None:
        sys.stdout.write(text_out)
    else:
        out.write_text(text_out, encoding="utf-8")
        typer.echo(f"{len(items)} recommendations written to {out}", err=True)
    if record:
        typer.echo(f"{recorded} fee changes recorded", err=True)


def rollup(
    interval: Annotated[float | None, typer.Option(help="run again every S seconds (a service); default once")] = None,
) -> None:
    """Bring the management rollups up to date (only the hours that changed or completed)."""
    settings = get_settings()
    while True:
        started = time.perf_counter()
        done = asyncio.run(in_session(settings, lambda s: rollups.refresh(
            s, now=datetime.now(UTC), hold_s=settings.management_hold_s)))
        if interval is None or done.hours:  # a service says something only when it did something
            typer.echo(f"rolled up {done.hours} hours in {time.perf_counter() - started:.1f} s; "
                       f"complete until {done.watermark.isoformat() if done.watermark else 'no history yet'}")
        if interval is None:
            return
        time.sleep(interval)
