"""CSV exports that a spreadsheet opens as data, never as formulas (OWASP "CSV injection").

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets; such a cell is written with a leading ``'``,
which the spreadsheet shows as text. Numbers stay numbers (a negative number is data, not a
formula). Every CSV export goes through :func:`rows_to_csv` or :func:`safe_cell`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from app.core.times import iso_utc

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as it should be written to a CSV cell."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, str) and value.startswith(DANGEROUS):
        return "'" + value
    return value


def rows_to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, chunk: int = 1000) -> Iterator[str]:
    """The header and ``rows`` as CSV text, in pieces of about ``chunk`` rows (for streaming)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for n, row in enumerate(rows, 1):
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
        if n % chunk == 0:
            yield _take(buffer)
    yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
