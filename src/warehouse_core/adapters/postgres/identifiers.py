"""Names that come from configuration, as quoted SQL identifiers (never pasted into SQL text)."""

from __future__ import annotations

from psycopg import sql


def qualified(name: str) -> sql.Identifier:
    """``schema.name`` or ``name`` as a quoted SQL identifier."""
    return sql.Identifier(*name.split("."))
