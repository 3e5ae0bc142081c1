"""Issue 18 item 20: long commands draw a rich progress bar on a terminal and nothing otherwise.

The terminal is a real pseudo-terminal (python's ``pty``); the other case is a pipe.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.core.settings import Settings
from app.inventory.city_file import write_city

ROOT = Path(__file__).resolve().parents[1]
BAR = "━"  # rich's bar character


def environ(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPARK_")}
    return env | {"CITYPARK_DATABASE_URL": settings.database_url, "TERM": "xterm-256color", "COLUMNS": "100"}


def argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "from app.cli import main; main()", *args]


def on_a_terminal(settings: Settings, *args: str) -> tuple[int, str]:
    """Run the command with stdout and stderr on a pty; its exit code and everything it drew."""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv(*args), stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=environ(settings))
    os.close(slave)
    out = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return process.wait(timeout=300), out.decode("utf-8", "replace")


def piped(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(*args), capture_output=True, text=True, cwd=ROOT, env=environ(settings), timeout=300)


async def test_seed_synthetic_draws_a_bar_only_on_a_terminal(fresh_db: Any) -> None:
    settings: Settings = await fresh_db()
    code, drawn = on_a_terminal(settings, "seed", "--synthetic", "3000", "--seed", "7")
    assert code == 0, drawn
    assert BAR in drawn
    assert "3000/3000" in drawn
    quiet = piped(settings, "seed", "--synthetic", "3000", "--seed", "8")
    assert quiet.returncode == 0, quiet.stderr
    assert BAR not in quiet.stderr + quiet.stdout
    assert "3000 spaces" in quiet.stdout


async def test_import_draws_a_bar_only_on_a_terminal(fresh_db: Any, tmp_path: Path) -> None:
    settings: Settings = await fresh_db()
    path = tmp_path / "city.geojson"
    write_city(path, spaces=2_000)
    code, drawn = on_a_terminal(settings, "import", str(path), "--operator", "city-op")
    assert code == 0, drawn
    assert BAR in drawn
    assert "writing" in drawn  # the second phase: the set-based statements
    assert "city-op: 8 facilities, 2000 spaces" in drawn
    quiet = piped(settings, "import", str(path), "--operator", "city-op")
    assert quiet.returncode == 0, quiet.stderr
    assert BAR not in quiet.stderr + quiet.stdout
    assert quiet.stdout.strip() == "city-op: 8 facilities, 2000 spaces, 2000 sensors, 208 rules"
