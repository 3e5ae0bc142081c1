"""deploy/: the compose file parses and runs only real citypark commands; the CI script."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

yaml = pytest.importorskip("yaml")


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())


def citypark_help(*args: str) -> str:
    out = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args, "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_compose_has_the_services_and_real_commands() -> None:
    services = compose()["services"]
    assert {"db", "mqtt", "api", "ingest", "migrate"} <= set(services)
    for name, service in services.items():
        command = service.get("command")
        if not command or command[0] != "citypark":
            continue
        words = list(itertools.takewhile(lambda a: not a.startswith("-"), command[1:]))  # with subcommands
        help_text = citypark_help(*words)
        for option in (arg for arg in command[1 + len(words):] if arg.startswith("--")):
            assert option in help_text, f"{name}: citypark {' '.join(words)} has no {option}"


def test_compose_mounts_files_that_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / "deploy" / source).exists(), source


def test_contract_commands_exist() -> None:
    text = citypark_help()
    for command in ("migrate", "seed", "import", "keys", "serve", "demo"):
        assert command in text


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    assert "make test" in readme
    assert "make demo" in readme


def test_mosquitto_config_raises_the_limits_that_drop_messages() -> None:
    for conf in ("mosquitto.conf", "mosquitto.local.conf"):
        text = (ROOT / "deploy" / "mosquitto" / conf).read_text()
        settings = dict(line.split(None, 1) for line in text.splitlines()
                        if line and not line.startswith("#") and " " in line)
        assert settings["max_queued_messages"].strip() == "0"
        assert settings["max_inflight_messages"].strip() == "0"
        assert settings["persistence"].strip() == "true"


def _interpolate(value: str, env: dict[str, str]) -> str:
    import re

    def one(match: re.Match[str]) -> str:
        name, op, rest = match[1], match[2], match[3]
        if op == ":?":
            assert name in env, f"compose requires {name}: {rest}"
            return env[name]
        return env.get(name, rest)

    return re.sub(r"\$\{(\w+)(:[-?])([^}]*)\}", one, value)


def test_every_citypark_service_starts_in_production_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production refuses example passwords, "*" origins, the development plate key: the compose
    file must make operators give their own (``${VAR:?…}``) and pass them to every service."""
    from app.core.settings import Settings

    env = {"POSTGRES_PASSWORD": "Pg-9f2k", "INGEST_MQTT_PASSWORD": "Mq-4t8z", "CITYPARK_PLATE_KEY": "pk-8d1c-0a",
           "CITYPARK_CORS_ORIGINS": '["https://parking.example.city"]'}
    services = [s for s in compose()["services"].values() if (s.get("command") or [""])[0] == "citypark"]
    assert len(services) >= 4
    for service in services:
        with monkeypatch.context() as patch:
            for name, value in service["environment"].items():
                patch.setenv(name, _interpolate(str(value), env))
            assert Settings().env == "production"  # read as each process reads its environment
