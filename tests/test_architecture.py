"""STYLE.md's dependency rules, checked from the import statements of every module.

The rules: no import cycles anywhere; ``matching/`` imports nothing of ours (nor database, web or
MQTT code); nothing imports ``sensors/``; domain packages never import the HTTP layer
``app.api``; and the domain packages depend on each other in one direction only, in the order
of ``LAYERS`` (a package may import ``app.core`` and the packages listed before it).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "sensors", "matching", "migrations", "bench")
# What the pure engine must never reach: database, web and MQTT code, or the service.
MATCHING_FORBIDDEN = ("app", "sensors", "sqlalchemy", "asyncpg", "geoalchemy2", "fastapi",
                      "starlette", "httpx", "uvicorn", "paho", "alembic")
# Lowest first: each may import only the ones before it (and matching/, the pure engine).
LAYERS = ("app.core", "app.occupancy", "app.passages", "app.inventory", "app.devices", "app.keys",
          "app.availability", "app.history", "app.forecast", "app.assignments", "app.enforcement",
          "app.standards", "app.management", "app.demo", "app.cli_lazy", "app.cli", "app.api")


def imports_of(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, at any depth (function-level imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in sorted(imports_of(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@functools.cache
def import_graph(packages: tuple[str, ...] = ("app", "sensors", "matching")) -> dict[str, set[str]]:
    """Module → the project modules it imports (``from a import b`` counts ``a.b`` if a module)."""
    paths = {module_name(p): p for package in packages for p in modules(package)}

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    return {m: {r for name in imports_of(p) if (r := resolve(name)) and r != m} for m, p in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            component.append(v)
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str | None:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    bad = []
    for module, deps in sorted(graph.items()):
        own = layer_of(module)
        if not module.startswith("app.") or module == "app":
            continue
        assert own is not None, f"{module} is in no layer: add its package to LAYERS"
        for dep in sorted(deps):
            other = layer_of(dep)
            if other is not None and rank[other] > rank[own]:
                bad.append(f"{module} ({own}) imports {dep} ({other})")
    return bad


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_domain_packages_import_only_packages_below_them() -> None:
    assert layer_violations(import_graph()) == []


@pytest.mark.parametrize("package", [layer for layer in LAYERS if layer != "app.api"])
def test_domain_packages_never_import_the_api(package: str) -> None:
    graph = import_graph()
    assert [f"{m} imports {d}" for m, deps in graph.items() if layer_of(m) == package
            for d in deps if d.startswith("app.api")] == []


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
    bad.write_text("import sqlalchemy\ndef f():\n    from app.api import main\n")
    assert imports_of(bad) == {"sqlalchemy", "app.api", "app.api.main"}


def test_cycle_finder_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_layer_check_sees_an_upward_import() -> None:
    graph = {"app.core.x": {"app.assignments.y"}, "app.assignments.y": {"app.core.x"}}
    assert layer_violations(graph) == ["app.core.x (app.core) imports app.assignments.y (app.assignments)"]
