"""The ``citypark`` command line.

Commands of packages that ``app`` must not import (``sensors``, bench tools) are registered
as entry points in the ``citypark.commands`` group of pyproject.toml and discovered here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app import cli_lazy
from app.core.errors import DomainError

if TYPE_CHECKING:  # imported lazily, so that `citypark --help` stays fast (app/cli_lazy.py)
    from app.core.settings import Settings


def get_settings() -> Settings:
    from app.core.settings import get_settings as settings

    return settings()


def in_session(settings: Settings, body: Callable[[Any], Coroutine[Any, Any, T]]) -> Coroutine[Any, Any, T]:
    from app.core.db import in_session as session_of

    return session_of(settings, body)

T = TypeVar("T")
cli = typer.Typer(help="citypark — smart-parking matching service", no_args_is_help=True, cls=cli_lazy.LazyGroup)
keys_cli = typer.Typer(help="API keys", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")


def run(coro_fn: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run an async command body with the environment's settings; domain errors exit 2."""
    try:
        return asyncio.run(coro_fn(get_settings()))
    except DomainError as exc:
        typer.echo(f"error: {exc.kind}: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a database not migrated or not running: one line, not a traceback
        hint = cli_lazy.database_hint(exc)
        if hint is None:
            raise
        typer.echo(f"error: {hint}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def migrate() -> None:
    """Create the database if missing, enable PostGIS, run `alembic upgrade heads`."""
    from app.core import migrate as database

    run(database.migrate)
    typer.echo("database migrated")


@cli.command()
def seed(
    demo: Annotated[str | None, typer.Option(help="demo district to load, e.g. tiedong")] = None,
    synthetic: Annotated[int | None, typer.Option(help="create N synthetic spaces")] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed for --synthetic")] = 0,
    replace: Annotated[bool, typer.Option(
        help="--synthetic: remove earlier synthetic spaces first (else the same N and seed add nothing)")] = False,
) -> None:
    """Load the demo district or synthetic load-test spaces (both idempotent: a re-run adds nothing)."""
    from app.core.db import raw_connection
    from app.inventory import seed as seed_service

    if (demo is None) == (synthetic is None):
        raise typer.BadParameter("give exactly one of --demo NAME or --synthetic N")
    if demo is not None:
        results = run(lambda s: in_session(s, lambda ses: seed_service.seed_demo(ses, name=demo)))
        for r in results:
            typer.echo(f"{r.operator_id}: {r.facilities} facilities, {r.spaces} spaces, "
                       f"{r.sensors} sensors, {r.rules} rules")
        return

    from app.core.progress import progress_bar

    async def body(settings: Settings) -> seed_service.SyntheticResult:
        async with raw_connection(settings) as conn:
            with progress_bar("spaces", total=synthetic) as advance:
                return await seed_service.seed_synthetic(
                    conn, n=synthetic or 0, seed=seed, replace=replace, advance=advance,
                    progress=lambda m: typer.echo(m, err=True))

    result = run(body)
    typer.echo(f"{result.spaces} spaces in {result.facilities} facilities ({result.added} new), "
               f"{result.seconds:.1f} s")


@cli.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    operator: Annotated[str, typer.Option(help="operator id the inventory belongs to")],
) -> None:
    """Load an inventory file (GeoJSON FeatureCollection), validated, all or nothing.

    The file is streamed (any size: a city of 250,000 spaces and more); a progress bar shows on a
    terminal."""
    from app.core.progress import progress_bar
    from app.inventory import service as inventory

    with progress_bar(f"reading {file.name}", total=file.stat().st_size) as advance:
        def progress(phase: str, done: int, total: int) -> None:
            advance(done, total, f"reading {file.name}" if phase == "read" else "writing")

        result = run(lambda s: in_session(s, lambda ses: inventory.import_inventory(
            ses, operator_id=operator, doc=file, area=s.service_area_bbox, progress=progress)))
    for warning in result.warnings:
        typer.echo(f"note: {warning}", err=True)
    typer.echo(f"{result.operator_id}: {result.facilities} facilities, {result.spaces} spaces, "
               f"{result.sensors} sensors, {result.rules} rules")


@keys_cli.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="driver, operator, enforcement, manager or admin")],
    operator: Annotated[str | None, typer.Option(help="operator id (operator keys)")] = None,
    name: Annotated[str | None, typer.Option(help="a label for the key")] = None,
    max_holds: Annotated[int | None, typer.Option(
        help="driver keys: active holds allowed at once (a fleet); default CITYPARK_MAX_HOLDS_PER_DRIVER")] = None,
) -> None:
    """Print a new API key (shown once; only its hash is stored)."""
    from app.keys import service as keys

    async def body(session: Any) -> str:
        plain, _ = await keys.create_key(session, role=role, operator_id=operator, name=name, max_holds=max_holds)
        return plain

    typer.echo(run(lambda s: in_session(s, body)))


@keys_cli.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="the key itself (cpk_…) or its id (UUID)")]) -> None:
    """Revoke an API key: it is refused (401) from then on."""
    import uuid

    from app.core.errors import NotFound
    from app.keys import service as keys

    async def body(session: Any) -> uuid.UUID:
        if key.startswith(keys.KEY_PREFIX):
            principal = await keys.authenticate(session, key=key)
            if principal is None:
                raise NotFound("no active key like that")
            key_id = principal.key_id
        else:
            try:
                key_id = uuid.UUID(key)
            except ValueError:
                raise typer.BadParameter(f"{key!r} is neither a key nor a key id") from None
        await keys.revoke_key(session, key_id=key_id)
        return key_id

    typer.echo(f"revoked {run(lambda s: in_session(s, body))}")


@cli.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    get_settings()  # refused settings (e.g. production with "*" origins) are one line here, not a traceback

    uvicorn.run("app.api.main:app_factory", factory=True, host=host, port=port,
                workers=workers, log_level="info", access_log=False)


@cli.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Migrate, seed the demo district, start API, ingest and simulator; print the URLs."""
    from app.demo.runner import run_demo

    sys.exit(run_demo(host=host, port=port))


def main() -> None:
    """``citypark``: any error a command did not explain itself is still one line on stderr and
    exit status 1 (``CITYPARK_TRACEBACK=1`` adds the traceback, for a bug report)."""
    try:
        group = typer.main.get_command(cli)
        assert isinstance(group, cli_lazy.LazyGroup)
        cli_lazy.register_plugins(group)  # plugin commands are imported only when run
        group()
    except Exception as exc:
        typer.echo(f"error: {cli_lazy.one_line(exc)}", err=True)
        if os.environ.get("CITYPARK_TRACEBACK", "").strip() not in {"", "0"}:
            traceback.print_exc()
        sys.exit(1)
