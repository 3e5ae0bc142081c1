"""matching/ is pure: no database, web or MQTT imports (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import matching

FORBIDDEN = {"app", "sensors", "sqlalchemy", "asyncpg", "fastapi", "starlette", "paho", "httpx",
             "geoalchemy2", "alembic", "uvicorn", "psycopg", "psycopg2", "aiohttp", "requests"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_matching_imports_no_infrastructure() -> None:
    files = list(Path(matching.__file__).parent.rglob("*.py"))
    assert files
    offenders = {str(f): bad for f in files if (bad := _imported_roots(f) & FORBIDDEN)}
    assert offenders == {}
