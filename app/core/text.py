"""Text that PostgreSQL cannot store: NUL (U+0000) is refused in ``text`` and ``jsonb``."""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64


def nul_path(value: Any, where: str = "$", depth: int = 0) -> str | None:
    """The JSON path of the first string (or key) holding a NUL character, else None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{where} (a key)"
            found = nul_path(item, f"{where}.{key}", depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{where}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


def a_or_an(word: str) -> str:
    """``"an operator"``, ``"an enforcement"``, ``"a driver"``: the word with its article."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word
