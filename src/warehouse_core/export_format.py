"""The export line rule, defined once: the fake store applies it in Python, and the PostgreSQL
export builds its SQL from the same constants (adapters/postgres/export.py); the store contract
suite proves the two agree byte for byte.

Fields are joined by ``|``; a NULL is nothing; inside a value a ``|`` becomes ``/`` and a line
break a space, so that a line is always one record. Each value is written as PostgreSQL writes it
as text: dates in ISO form, numbers with their scale (``1.50``), booleans as ``true``/``false``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Dict, List, Sequence

FIELD_SEPARATOR = "|"
# Export columns that come from the stored line; any other comes from the invoice view.
LINE_COLUMNS = ("invoice_number", "line_number", "quantity", "description", "value", "day")
NULL_TEXT = ""
# Each character on the left is written as the one on the right.
REPLACED: Dict[str, str] = {FIELD_SEPARATOR: "/", "\n": " ", "\r": " "}
_REPLACEMENTS = str.maketrans(REPLACED)


def export_line(values: Sequence[Any]) -> str:
    """One export line, without its newline."""
    return FIELD_SEPARATOR.join(field_text(value) for value in values)


def view_columns_needed(export_columns: Sequence[str]) -> List[str]:
    """The columns the invoice view must have: the import's key and date, and every export column
    that the stored line does not provide."""
    return ["invoice_number", "invoice_date"] + [c for c in export_columns if c not in LINE_COLUMNS]


def field_text(value: Any) -> str:
    if value is None:
        return NULL_TEXT
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        text = value.isoformat()
    elif isinstance(value, Decimal):
        text = format(abs(value) if value.is_zero() else value, "f")  # PostgreSQL has no -0.00
    else:
        text = str(value)
    return text.translate(_REPLACEMENTS)
