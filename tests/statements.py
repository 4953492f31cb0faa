"""Counting the SQL statements a piece of code sends, for fixed-query tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from portal.extensions import db


def count_statements(call: Callable[[], Any]) -> int:
    """How many statements ``call`` sends to the database."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return len(statements)
