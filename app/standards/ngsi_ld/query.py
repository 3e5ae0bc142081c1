"""The NGSI-LD query language (``q``, ETSI GS CIM 009 §4.9): parsed once, evaluated per entity.

Supported: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``~=`` / ``!~=`` (regular expressions),
attribute existence (a bare attribute name), value lists (``a=="x","y"``) and ranges
(``a==1..5``), ``;`` (and), ``|`` (or; ``;`` binds tighter), parentheses, dotted paths into
values (``a.b``). Values are numbers, ``"quoted strings"``, ``true``/``false`` or bare words
(dates and times, compared as text in their RFC 3339 form). A term on an array value holds
when it holds for any element; a term on a missing attribute never holds.

Evaluation runs over an entity's key-values form, so the same parsed query serves queries
and subscriptions.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.standards.ngsi_ld.errors import BadRequestData

OPERATORS = ("==", "!=", ">=", "<=", "~=", "!~=", ">", "<")
_ATTR = re.compile(r"[A-Za-z_@][\w.\[\]:/#-]*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?$")
MAX_LENGTH = 2000


@dataclass(frozen=True)
class Term:
    path: tuple[str, ...]
    op: str | None  # None: the attribute exists
    values: tuple[Any, ...] = ()
    range: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class Node:
    op: str  # "and" | "or"
    parts: tuple[Node | Term, ...]


Query = Node | Term


@functools.lru_cache(maxsize=512)
def parse(text: str) -> Query:
    """Parse ``q``; ``BadRequestData`` on a syntax error. Cached: the trees are immutable and
    clients repeat the same few queries."""
    if len(text) > MAX_LENGTH:
        raise BadRequestData(f"q is longer than {MAX_LENGTH} characters")
    parser = _Parser(text)
    tree = parser.disjunction()
    if parser.pos != len(text):
        raise BadRequestData(f"q: unexpected {text[parser.pos:parser.pos + 10]!r} at {parser.pos}")
    return tree


def attributes(tree: Query) -> set[str]:
    """The top-level attribute names a query reads."""
    if isinstance(tree, Term):
        return {tree.path[0]}
    return set().union(*(attributes(p) for p in tree.parts))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def disjunction(self) -> Query:
        parts = [self.conjunction()]
        while self._take("|"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Node("or", tuple(parts))

    def conjunction(self) -> Query:
        parts = [self.term()]
        while self._take(";"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def term(self) -> Query:
        if self._take("("):
            inner = self.disjunction()
            if not self._take(")"):
                raise BadRequestData(f"q: missing ')' at {self.pos}")
            return inner
        match = _ATTR.match(self.text, self.pos)
        if not match:
            raise BadRequestData(f"q: an attribute name was expected at {self.pos}")
        self.pos = match.end()
        path = tuple(p for p in re.split(r"[.\[\]]", _short(match.group())) if p)
        op = next((o for o in sorted(OPERATORS, key=len, reverse=True) if self.text.startswith(o, self.pos)), None)
        if op is None:
            return Term(path, None)
        self.pos += len(op)
        raw = self._value_text()
        if op in ("~=", "!~="):
            return Term(path, op, (_regex(raw),))
        if op in ("==", "!=") and ".." in raw and not raw.startswith('"'):
            low, high = raw.split("..", 1)
            return Term(path, op, (), (_value(low), _value(high)))
        items = _split_list(raw) if op in ("==", "!=") else [raw]
        return Term(path, op, tuple(_value(v) for v in items))

    def _value_text(self) -> str:
        start, quoted = self.pos, False
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == '"':
                quoted = not quoted
            elif not quoted and char in ";|)":
                break
            self.pos += 1
        if quoted:
            raise BadRequestData("q: unterminated string")
        raw = self.text[start:self.pos]
        if not raw:
            raise BadRequestData(f"q: a value was expected at {start}")
        return raw

    def _take(self, char: str) -> bool:
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False


def _short(name: str) -> str:
    """An expanded parking term (https://smartdatamodels.org/dataModel.Parking/x) is its short name."""
    for prefix in ("https://smartdatamodels.org/dataModel.Parking/", "https://smartdatamodels.org/",
                   "https://uri.etsi.org/ngsi-ld/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _split_list(raw: str) -> list[str]:
    out, current, quoted = [], "", False
    for char in raw:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            out.append(current)
            current = ""
        else:
            current += char
    return [*out, current]


def _value(raw: str) -> Any:
    raw = raw.strip()
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        return raw[1:-1]
    if raw in ("true", "false"):
        return raw == "true"
    if _NUMBER.match(raw):
        return float(raw)
    if not raw or '"' in raw:
        raise BadRequestData(f"q: bad value {raw!r}")
    return raw


def _regex(raw: str) -> re.Pattern[str]:
    text = raw[1:-1] if raw.startswith('"') and raw.endswith('"') else raw
    try:
        return re.compile(text)
    except re.error as exc:
        raise BadRequestData(f"q: bad regular expression {text!r}: {exc}") from None


# --- evaluation ---------------------------------------------------------------------------

_MISSING = object()


def matches(tree: Query, entity: dict[str, Any]) -> bool:
    """Whether the key-values ``entity`` satisfies the query."""
    if isinstance(tree, Node):
        test = all if tree.op == "and" else any
        return test(matches(p, entity) for p in tree.parts)
    value = _lookup(entity, tree.path)
    if value is _MISSING:
        return False
    if tree.op is None:
        return True
    candidates = value if isinstance(value, list) else [value]
    if tree.op in ("!=", "!~="):  # holds when no element equals / matches
        positive = Term(tree.path, tree.op[1:] if tree.op == "!~=" else "==", tree.values, tree.range)
        return not any(_holds(positive, v) for v in candidates)
    return any(_holds(tree, v) for v in candidates)


def _lookup(entity: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = entity
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
}


def _holds(term: Term, value: Any) -> bool:
    if term.op == "~=":
        return isinstance(value, str) and term.values[0].search(value) is not None
    if term.range is not None:
        low, high = term.range
        return _comparable(value, low) and _comparable(value, high) and low <= _norm(value) <= high
    compare = _COMPARE[term.op or "=="]
    return any(_comparable(value, v) and compare(_norm(value), v) for v in term.values)


def _norm(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _comparable(value: Any, other: Any) -> bool:
    if isinstance(value, bool) or isinstance(other, bool):
        return isinstance(value, bool) and isinstance(other, bool)
    if isinstance(other, float):
        return isinstance(value, int | float)
    return isinstance(value, str) and isinstance(other, str)
