"""The commands as a user runs them: ``citypark import-history`` and ``citypark forecast …``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.core.settings import Settings
from tests.forecast.conftest import START
from tests.forecast.test_history_import import DIRTY

ROOT = Path(__file__).resolve().parents[2]


def citypark(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CITYPARK_")}
    environ |= {"CITYPARK_DATABASE_URL": settings.database_url, **env}
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT, env=environ, timeout=300)


def test_import_history_prints_reasons_and_exits_1_without_skip_bad(lots: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text(DIRTY)
    refused = citypark(lots, "import-history", str(path), "--operator", "hist-op")
    assert refused.returncode == 1
    assert "nothing imported" in refused.stdout
    assert "free_above_capacity" in refused.stdout
    assert "rows rejected" in refused.stderr
    assert "━" not in refused.stderr
    done = citypark(lots, "import-history", str(path), "--operator", "hist-op", "--skip-bad")
    assert done.returncode == 0, done.stderr
    assert "7 rejected" in done.stdout
    assert "partitions made" in done.stdout


def test_forecast_evaluate_prints_every_baseline(forecast_db: dict[str, Any]) -> None:
    since = (START + timedelta(days=26)).isoformat()
    until = (START + timedelta(days=29)).isoformat()
    out = citypark(forecast_db["settings"], "forecast", "evaluate", "--since", since, "--until", until,
                   "--days", "26", CITYPARK_FORECAST_MAX_SAMPLES="30000")
    assert out.returncode == 0, out.stderr
    for word in ("model", "persistence", "last_week", "corrected_profile", "coverage"):
        assert word in out.stdout
    assert [line.split()[0] for line in out.stdout.splitlines()[2:]] == ["15", "30", "60", "90", "120"]
