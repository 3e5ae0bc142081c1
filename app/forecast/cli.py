"""``citypark forecast train`` and ``citypark forecast evaluate``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import typer

from app.core.db import raw_connection
from app.core.settings import Settings, get_settings
from app.core.times import cli_moment
from app.forecast import evaluation, series, store, training
from app.forecast.series import Grid

forecast_cli = typer.Typer(help="availability forecasts", no_args_is_help=True)


def _aligned(t: datetime) -> datetime:
    """Down to the quarter hour (grids of training runs line up)."""
    return datetime.fromtimestamp(t.timestamp() // 900 * 900, UTC)


async def train_once(settings: Settings, *, until: datetime, days: int, max_samples: int,
                     fast: bool = False) -> tuple[int | None, dict[str, Any], float]:
    """Train on ``[until - days, until)`` and store the model; (id or None, metrics, seconds)."""
    started = time.perf_counter()
    async with raw_connection(settings) as conn:
        inv = await series.inventory(conn)
        grid = await series.load(conn, inv, end=until, n=days * 96)
        art, metrics = await asyncio.to_thread(training.fit, grid, country=settings.forecast_holidays,
                                               max_samples=max_samples, fast=fast)
        model_id = await store.save(conn, art, metrics) if art is not None else None
    return model_id, metrics, time.perf_counter() - started


@forecast_cli.command("train")
def train(
    until: Annotated[str | None, typer.Option(help="end of the training window (RFC 3339); default now")] = None,
    days: Annotated[int | None, typer.Option(min=8, max=730, help="window (default: settings)")] = None,
    every: Annotated[float | None, typer.Option(help="train again every S seconds (a service); default once")] = None,
) -> None:
    """Train the forecast model on the recent history and store it in the database."""
    settings = get_settings()
    while True:
        end = _aligned(cli_moment(until, datetime.now(UTC)))
        model_id, metrics, seconds = asyncio.run(train_once(
            settings, until=end, days=days or settings.forecast_train_days, max_samples=settings.forecast_max_samples))
        if model_id is None:
            typer.echo(f"no model: {metrics.get('reason')}", err=True)
        else:
            typer.echo(f"model {model_id}: {metrics['facilities']} facilities, {metrics['samples']} samples, "
                       f"{seconds:.1f} s; held-out days:")
            typer.echo(evaluation.table(metrics))
        if every is None:
            raise typer.Exit(0 if model_id is not None else 1)
        time.sleep(every)


@forecast_cli.command("evaluate")
def evaluate(
    since: Annotated[str, typer.Option(help="start of the test period (RFC 3339): training uses only data before it")],
    until: Annotated[str | None, typer.Option(help="end of the test period; default now")] = None,
    days: Annotated[int | None, typer.Option(min=8, max=730, help="training window before --since")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Chronological backtest: model vs persistence, last week and the corrected profile."""
    settings = get_settings()
    start = _aligned(cli_moment(since, datetime.now(UTC)))
    end = _aligned(cli_moment(until, datetime.now(UTC)))
    if end <= start + timedelta(hours=3):
        raise typer.BadParameter("--until must be more than three hours after --since")
    metrics = asyncio.run(backtest(settings, since=start, until=end, days=days or settings.forecast_train_days))
    typer.echo(orjson.dumps(metrics, option=orjson.OPT_INDENT_2).decode() if as_json else evaluation.table(metrics))


async def backtest(settings: Settings, *, since: datetime, until: datetime, days: int) -> dict[str, Any]:
    """Train on ``[since - days, since)``, test on ``[since, until)``; the metrics."""
    train_cols = days * 96
    test_cols = int((until - since).total_seconds() // 900)
    async with raw_connection(settings) as conn:
        inv = await series.inventory(conn)
        grid = await series.load(conn, inv, end=until, n=train_cols + test_cols)
    train_grid = Grid(inv, since, grid.share[:, :train_cols])
    art, metrics = await asyncio.to_thread(training.fit, train_grid, country=settings.forecast_holidays,
                                           max_samples=settings.forecast_max_samples)
    if art is None:
        raise typer.BadParameter(f"no model: {metrics.get('reason')}")
    rows = [inv.index[f] for f in art.ids]
    test = Grid(inv.subset(art.ids), grid.end, grid.share[rows])
    hd = evaluation.holdout(test, art.profiles(art.ids), art, train_cols, country=settings.forecast_holidays)
    out = evaluation.summarize(hd)
    out.update({"facilities": len(art.ids), "train_since": art.train_since.isoformat(),
                "test_since": since.isoformat(), "test_until": until.isoformat()})
    return out
