"""Issue 13 item 9: every command with the database down (a closed port) says so in ONE line and
exits non-zero, never a traceback; a bad inventory feature is one line naming the feature."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app.core.settings import Settings
from tests.conftest import ROOT
from tests.ingest.harness import free_port

FEATURE = {"type": "Feature", "id": "zq-lot-1", "properties": {"feature": "facility", "name": "站前", "kind": "lot",
           "capacity": 5}, "geometry": {"type": "Polygon", "coordinates": [[[122.99, 41.11], [122.991, 41.11],
                                        [122.991, 41.111], [122.99, 41.111], [122.99, 41.11]]]}}


def citypark(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    inventory = folder / "inventory.geojson"
    inventory.write_text(json.dumps({"type": "FeatureCollection", "features": [FEATURE]}), encoding="utf-8")
    bad = folder / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{**FEATURE, "properties": [1]}]}))
    history = folder / "history.csv"
    history.write_text("facility_id,observed_at,free\nzq-lot-1,2026-11-29T08:00:00+08:00,3\n")
    return {"inventory": inventory, "bad": bad, "history": history}


def test_every_command_with_the_database_down_is_one_line(files: dict[str, Path]) -> None:
    down = {"CITYPARK_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/citypark"}
    commands = [
        ["migrate"], ["import", str(files["inventory"]), "--operator", "tiedong-city"],
        ["keys", "create", "--role", "driver"], ["keys", "revoke", "cpk_" + "a" * 43],
        ["seed", "--demo", "tiedong"], ["seed", "--synthetic", "10"], ["forecast", "train"],
        ["import-history", str(files["history"]), "--operator", "tiedong-city"],
        ["simulate", "--duration", "1"], ["enforce", "--once"],
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda args: citypark(*args, env=down), commands))
    for args, result in zip(commands, results, strict=True):
        said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        assert result.returncode != 0, (args, said)
        assert len(said) == 1, (args, said)
        assert "Traceback" not in said[0]
        assert "cannot reach PostgreSQL" in said[0] or "Connect call failed" in said[0], (args, said)


async def test_a_feature_whose_properties_are_not_an_object_is_one_line_naming_it(
        files: dict[str, Path], fresh_db: Any) -> None:
    settings: Settings = await fresh_db()  # a migrated database: the feature, not the database, is what fails
    result = citypark("import", str(files["bad"]), "--operator", "tiedong-city",
                      env={"CITYPARK_DATABASE_URL": settings.database_url})
    said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    assert result.returncode != 0
    assert said == ["error: invalid_input: feature 'zq-lot-1': properties must be an object"]


def test_refused_settings_are_one_line_naming_the_variable() -> None:
    result = citypark("keys", "create", "--role", "driver", env={"CITYPARK_MAX_HOLDS_PER_DRIVER": "zero"})
    said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    assert result.returncode == 1
    assert len(said) == 1
    assert said[0].startswith("error: invalid settings: CITYPARK_MAX_HOLDS_PER_DRIVER:"), said


def test_a_traceback_only_when_asked_for() -> None:
    env = {"CITYPARK_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/citypark",
           "CITYPARK_MAX_HOLDS_PER_DRIVER": "zero", "CITYPARK_TRACEBACK": "1"}
    result = citypark("keys", "create", "--role", "driver", env=env)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
