"""Fixtures of the ingest tests: a private broker, a fresh database, the ingest command."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ingest.harness import Broker, Ingest


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker().start()
    yield b
    b.remove()


@pytest.fixture
async def ingest_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Ingest]]:
    """``ingest_factory(settings, mqtt_url, **kw)`` → a started `citypark ingest`; stopped after."""
    made: list[Ingest] = []

    def make(settings: Any, mqtt_url: str, **kw: Any) -> Ingest:
        ingest = Ingest(settings, mqtt_url, tmp_path / "ingest.log", **kw).start()
        made.append(ingest)
        return ingest

    yield make
    for ingest in made:
        ingest.stop()
