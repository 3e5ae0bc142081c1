"""The one id grammar of citypark: operator, facility, space and sensor ids.

An id travels in MQTT topics (``parking/{operator}/sensors/{sensor}/occupancy``), URL paths,
CSV exports and log lines, so it must be safe in all of them: 1 to ``MAX_LEN`` characters of
ASCII letters, digits and ``_ . : -``, starting with a letter or digit. That excludes the MQTT
wildcards ``+`` and ``#``, the level separator ``/``, ``$`` (broker topics), ``%`` and ``?``
(URLs), whitespace and every control character.
"""

from __future__ import annotations

import re

from app.core.errors import InvalidInput

MAX_LEN = 100
PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_ID = re.compile(PATTERN)
RULE = f"1 to {MAX_LEN} characters of letters, digits and _ . : - (starting with a letter or digit)"


def is_valid(value: object) -> bool:
    """Whether ``value`` is a string of the id grammar."""
    return isinstance(value, str) and 0 < len(value) <= MAX_LEN and _ID.match(value) is not None and \
        not value.endswith("\n")


def check(value: object, what: str = "id") -> str:
    """``value`` if it is a valid id, else InvalidInput naming ``what`` and the rule."""
    if not is_valid(value):
        raise InvalidInput(f"{what} {_show(value)} is not a valid id: {RULE}")
    assert isinstance(value, str)
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"
