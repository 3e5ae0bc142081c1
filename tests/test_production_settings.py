"""Issue 13 item 9: CITYPARK_ENV=production refuses what only development may run with — "*"
CORS origins, the development plate key and database URL, example passwords — at startup,
with a message that names each setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.core.settings import Settings
from tests.conftest import ROOT

GOOD = {"env": "production", "plate_key": "k3y-of-the-city-0f-an5han", "cors_origins": ["https://app.example.city"],
        "database_url": "postgresql://citypark:Vw9-q2@db:5432/citypark",
        "mqtt_url": "mqtts://citypark-ingest:Zt4-b8@mqtt.example.city:8883"}


def test_a_production_configuration_of_ones_own_is_accepted() -> None:
    assert Settings(**GOOD).env == "production"
    assert Settings(env="development").cors_origins == ["*"]  # development keeps its open defaults


@pytest.mark.parametrize(("change", "named"), [
    ({"cors_origins": ["*"]}, "CITYPARK_CORS_ORIGINS"),
    ({"cors_origins": ["https://app.example.city", "*"]}, "CITYPARK_CORS_ORIGINS"),
    ({"plate_key": "citypark-development-plate-key"}, "CITYPARK_PLATE_KEY"),
    ({"plate_key": "change-me-to-32-random-bytes"}, "CITYPARK_PLATE_KEY"),
    ({"database_url": "postgresql://postgres@127.0.0.1:5432/citypark"}, "CITYPARK_DATABASE_URL"),
    ({"database_url": "postgresql://postgres:citypark@db:5432/citypark"}, "CITYPARK_DATABASE_URL"),
    ({"database_url": "postgresql://citypark:change-me@pgbouncer:5432/citypark"}, "CITYPARK_DATABASE_URL"),
    ({"database_read_url": "postgresql://citypark:change-me@ro:5432/citypark"}, "CITYPARK_DATABASE_READ_URL"),
    ({"database_direct_url": "postgresql://citypark:Password@rw:5432/citypark"}, "CITYPARK_DATABASE_DIRECT_URL"),
    ({"mqtt_url": "mqtt://citypark-ingest:change-me@mqtt:1883"}, "CITYPARK_MQTT_URL"),
    ({"lorawan_mqtt_url": "mqtt://ns:changeme@ns:1883"}, "CITYPARK_LORAWAN_MQTT_URL"),
    ({"forwarded_allow_ips": "*"}, "CITYPARK_FORWARDED_ALLOW_IPS"),
])
def test_each_development_default_is_refused_by_name(change: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named) as caught:
        Settings(**{**GOOD, **change})
    assert "CITYPARK_ENV=production refuses" in str(caught.value)
    assert Settings(**{**GOOD, **change, "env": "development"})  # the same is fine in development


def test_all_problems_are_said_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env="production")
    text = str(caught.value)
    assert all(name in text for name in ("CITYPARK_CORS_ORIGINS", "CITYPARK_PLATE_KEY", "CITYPARK_DATABASE_URL"))


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["ingest"], ["migrate"]])
def test_a_refused_production_start_is_one_line_and_exit_1(command: list[str]) -> None:
    env = {**os.environ, "CITYPARK_ENV": "production", "CITYPARK_PLATE_KEY": GOOD["plate_key"],
           "CITYPARK_DATABASE_URL": GOOD["database_url"], "CITYPARK_CORS_ORIGINS": '["*"]'}
    result = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *command], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    assert result.returncode == 1, said
    assert len(said) == 1, said
    assert said[0].startswith("error: invalid settings: CITYPARK_ENV=production refuses CITYPARK_CORS_ORIGINS")
