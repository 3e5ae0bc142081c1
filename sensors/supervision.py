"""When to restart a crashed ingest worker, and when to stop trying.

A worker that dies is restarted after an exponentially growing delay with jitter
(``CITYPARK_INGEST_RESTART_BACKOFF_S`` doubled per consecutive failure, at most
``CITYPARK_INGEST_RESTART_BACKOFF_MAX_S``; each delay drawn from its upper half, so workers
that crashed together do not restart in lockstep against a recovering broker or database).
A worker that ran ``CITYPARK_INGEST_RESTART_STABLE_S`` before dying starts counting afresh.
The ``CITYPARK_INGEST_RESTART_MAX_FAILURES``-th consecutive failure gives up: the supervisor
says so in the log and exits non-zero, so that systemd, Kubernetes or an operator sees a
broken deployment instead of a process that restarts forever.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    base_s: float
    max_s: float
    max_failures: int
    stable_s: float
    draw: Callable[[float, float], float] = field(default=random.uniform, repr=False)
    failures: int = 0

    def after_exit(self, ran_s: float) -> float | None:
        """The delay before the next start of a worker that ran ``ran_s`` seconds; None: give up."""
        if ran_s >= self.stable_s:
            self.failures = 0
        self.failures += 1
        if self.failures >= self.max_failures:
            return None
        ceiling = min(self.max_s, self.base_s * 2 ** (self.failures - 1))
        return self.draw(ceiling / 2, ceiling)
