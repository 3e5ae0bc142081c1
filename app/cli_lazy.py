"""What keeps ``citypark --help`` fast: plugin commands loaded only when they are run.

The commands of ``citypark.commands`` entry points (``ingest``, ``simulate``, ``enforce``,
``evaluate``…) live in modules that import numpy, scipy, SQLAlchemy and paho. Listing them in
``--help`` needs only a name and a line of help, so each is registered as a placeholder; the
module is imported when the command is resolved to run (or to show its own ``--help``).
A plugin whose help line is not in ``PLUGIN_HELP`` is loaded at once (correct, just slower).

``bench/bench_cli.py`` measures ``citypark --help`` against ``python -c pass``.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

import typer
from typer import _click as click  # typer's own click (typer >= 0.20 vendors it)
from typer.core import TyperCommand, TyperGroup

GROUP = "citypark.commands"
PLUGIN_HELP = {
    "enforce": "Detect violations continuously (overstays, no-parking) from the sensor history.",
    "evaluate": "Agent-based simulation of the matching policies (pure, no database).",
    "ingest": "MQTT ingest workers: shared subscription, batched idempotent writes, acks after commit.",
    "simulate": "Publish realistic sensor traffic for the seeded district over MQTT.",
    "notify": "Deliver NGSI-LD subscription notifications from ingest's change feed (runs until stopped).",
    "forecast": "Free-space forecasts: train the model, evaluate it against the baselines.",
    "import-history": "Load a CSV of past counts or sensor events (validated, all or nothing).",
    "pricing": "Demand-responsive pricing: `pricing report` writes the SFpark-style recommendations as CSV.",
    "rollup": "Keep the management rollups current (once, or every --interval seconds).",
}


class Pending(TyperCommand):
    """A plugin command not imported yet: a name and a help line for listings."""

    def __init__(self, ep: EntryPoint, help_line: str) -> None:
        super().__init__(name=ep.name, help=help_line, short_help=help_line, add_help_option=False)
        self.entry_point = ep

    def load(self) -> click.Command:
        return to_click(self.entry_point.name, self.entry_point.load())


def to_click(name: str, target: Any) -> click.Command:
    """A click command of a typer app or a typer-style function."""
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        holder = typer.Typer()
        holder.command(name)(target)
        command = typer.main.get_command(holder)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A typer group that swaps a :class:`Pending` command for the real one when it is run."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, Pending) and name is not None:
            command = self.commands[name] = command.load()
        return name, command, rest


def register_plugins(group: TyperGroup) -> None:
    """Add every ``citypark.commands`` entry point to ``group``, lazily where its help is known."""
    for ep in entry_points(group=GROUP):
        help_line = PLUGIN_HELP.get(ep.name)
        group.add_command(Pending(ep, help_line) if help_line else to_click(ep.name, ep.load()), ep.name)


def database_hint(exc: BaseException) -> str | None:
    """One line for a database error a command can explain (not migrated, unreachable), else None.

    Walks the exception chain, so SQLAlchemy's wrappers of asyncpg's errors are understood too.
    """
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name == "UndefinedTableError":
            return "the database has no citypark tables yet: run `citypark migrate` first"
        if name == "InvalidCatalogNameError":
            return "the database does not exist yet: run `citypark migrate` first (it creates it)"
        if isinstance(seen, ConnectionRefusedError | TimeoutError) or name == "CannotConnectNowError":
            return f"cannot reach PostgreSQL ({seen}): is it running? see CITYPARK_DATABASE_URL"
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "orig", None)
    return None


def one_line(exc: BaseException) -> str:
    """An error as one line: the database hint, invalid settings by name, else its type and first line."""
    hint = database_hint(exc)
    if hint is not None:
        return hint
    errors = getattr(exc, "errors", None)
    if type(exc).__name__ == "ValidationError" and callable(errors):  # pydantic: settings refused
        parts = [(f"CITYPARK_{'_'.join(str(p) for p in e['loc']).upper()}: " if e.get("loc") else "")
                 + str(e.get("msg", "")).removeprefix("Value error, ") for e in errors()]
        return "invalid settings: " + "; ".join(parts)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
