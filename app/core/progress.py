"""Progress of long commands: a rich progress bar on a terminal, silence otherwise.

``with progress_bar("spaces", total=n) as advance: advance(done, total)`` draws on stderr when
it is a terminal (or ``force`` is given); piped, logged or in CI it prints nothing, so output
that is parsed stays clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[..., None]  # advance(done, total, description=None)


@contextmanager
def progress_bar(description: str, *, total: int | None = None, force: bool | None = None) -> Iterator[Advance]:
    """A callable ``advance(done, total, description=None)``; a no-op when stderr is not a terminal."""
    shown = sys.stderr.isatty() if force is None else force
    if not shown:
        yield lambda done, total, description=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=True) if force else Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(done: int, of: int, description: str | None = None) -> None:
            if description is not None:
                bar.update(task, description=description)
            bar.update(task, completed=done, total=of)

        yield advance
