"""STYLE.md's dependency rules, checked from the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "sensors", "matching", "migrations", "bench")
# What the pure engine must never reach: database, web and MQTT code, or the service.
MATCHING_FORBIDDEN = ("app", "sensors", "sqlalchemy", "asyncpg", "geoalchemy2", "fastapi",
                      "starlette", "httpx", "uvicorn", "paho", "alembic")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in sorted(imports_of(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_matching_is_pure() -> None:
    assert modules("matching"), "matching/ has no modules"
    assert offenders("matching", MATCHING_FORBIDDEN) == []


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "sensors"])
def test_nothing_imports_sensors(package: str) -> None:
    assert offenders(package, ("sensors",)) == []


def test_sensors_never_imports_the_api() -> None:
    assert offenders("sensors", ("app.api",)) == []


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom app.api import main\n")
    assert imports_of(bad) == {"sqlalchemy", "app.api"}
