"""``citypark notify``: the NGSI-LD notifier process (registered as a citypark command)."""

from __future__ import annotations

import asyncio
import logging

import typer

from app.core.settings import get_settings


def notify() -> None:
    """Deliver NGSI-LD subscription notifications from ingest's change feed (runs until stopped)."""
    from app.standards.ngsi_ld import notifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.echo("citypark notify: delivering NGSI-LD notifications (Ctrl-C stops)")
    try:
        asyncio.run(notifier.serve(get_settings()))
    except KeyboardInterrupt:
        pass
