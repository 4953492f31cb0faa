"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Spreadsheets treat a cell starting with ``=``, ``+``, ``-`` or ``@`` as a
formula (and some also one starting with a tab or a carriage return), so a
customer name typed as ``=HYPERLINK(...)`` in an export could run on the
reader's machine. Such a cell is written with a leading single quote, which
spreadsheets take as "this is text" and do not show.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """``value`` as CSV cell text, quoted with ``'`` when it could be a formula.

    Numbers and dates we format ourselves cannot carry a formula, so a negative
    number stays a number ("-12.50") and spreadsheets can still add it up.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | Decimal | float | date | datetime):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A whole CSV document, every cell made safe."""
    return "".join(csv_lines(header, rows))


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The same document line by line, for a streamed download."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in itertools.chain([header], rows):
        writer.writerow([safe_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
