"""Issue 13 item 9: a crashing ingest worker is restarted with exponential backoff and jitter,
and after repeated failures the supervisor gives up loudly (log + exit 1) instead of
restarting it every 0.5 s forever. Real worker processes (spawned) that crash at start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.core.settings import Settings
from sensors.cli import _supervise
from sensors.supervision import RestartPolicy


def test_delays_double_up_to_the_cap_and_the_nth_failure_gives_up() -> None:
    top = RestartPolicy(0.5, 5.0, max_failures=6, stable_s=60, draw=lambda lo, hi: hi)
    assert [top.after_exit(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, None]


def test_each_delay_is_drawn_from_the_upper_half_of_its_ceiling() -> None:
    bounds: list[tuple[float, float]] = []
    policy = RestartPolicy(1.0, 100.0, max_failures=5, stable_s=60,
                           draw=lambda lo, hi: bounds.append((lo, hi)) or lo)  # type: ignore[func-returns-value]
    for _ in range(4):
        policy.after_exit(0.1)
    assert bounds == [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0)]
    jittered = RestartPolicy(1.0, 100.0, max_failures=50, stable_s=60)
    delays = [jittered.after_exit(0.1) for _ in range(6)]
    assert all(d is not None and 2 ** k / 2 <= d <= 2 ** k for k, d in enumerate(delays))
    assert len({RestartPolicy(1.0, 100.0, 50, 60).after_exit(0.1) for _ in range(20)}) > 1  # not in lockstep


def test_a_stable_run_starts_the_count_afresh() -> None:
    policy = RestartPolicy(1.0, 100.0, max_failures=3, stable_s=60, draw=lambda lo, hi: hi)
    assert [policy.after_exit(1.0), policy.after_exit(1.0)] == [1.0, 2.0]
    assert policy.after_exit(600.0) == 1.0  # it ran ten minutes: a new incident, not the third failure
    assert policy.after_exit(1.0) == 2.0
    assert policy.after_exit(1.0) is None


def crash_at_start(index: int, folder: str, _metrics_port: int) -> None:
    """A worker that dies as soon as it starts (run in a spawned process)."""
    with (Path(folder) / "starts").open("a") as f:
        f.write(f"{index}\n")
    raise SystemExit(3)


def test_the_supervisor_backs_off_and_gives_up_with_exit_1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(ingest_restart_backoff_s=0.05, ingest_restart_backoff_max_s=0.2,
                        ingest_restart_max_failures=3, ingest_restart_stable_s=600)
    with caplog.at_level(logging.WARNING, logger="sensors.cli"):
        code = _supervise(2, str(tmp_path), 0, target=crash_at_start, settings=settings)
    assert code == 1
    starts = (tmp_path / "starts").read_text().split()
    assert max(starts.count("0"), starts.count("1")) == 3  # started, restarted twice, then given up
    messages = [r.getMessage() for r in caplog.records if r.name == "sensors.cli"]
    assert any("restart 1 of at most 2" in m for m in messages), messages
    assert any("restart 2 of at most 2" in m for m in messages), messages
    given_up = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert len(given_up) == 1
    assert given_up[0].levelno == logging.ERROR
    assert "exited (3) 3 times in a row" in given_up[0].getMessage()
