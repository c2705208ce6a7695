"""The runner on SQLite: the `sqlite3` connection of the unit of work, on the loop's thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from .base import CopyTarget, Runner


class SqliteRunner(Runner):
    __slots__ = ("_conn", "dialect")

    def __init__(self, conn: sqlite3.Connection, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect

    async def many(self, sql: str, rows: list[tuple[Any, ...]], copy: CopyTarget | None) -> int:
        try:
            return self._conn.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise wrapped(sql, rows[:1], exc) from exc

    async def rows(
        self, sql: str, args: tuple[Any, ...], describe: bool
    ) -> tuple[Sequence[Any], Sequence[tuple[str, Any]] | None]:
        try:
            cursor = self._conn.execute(sql, args)
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            raise wrapped(sql, args, exc) from exc
        if not describe:
            return rows, None
        return rows, [(column[0], column[1]) for column in cursor.description or ()]

    def end(self, commit: bool) -> None:
        """Commits or rolls back what only the driver wrote (sqlite3 began it)."""
        try:
            self._conn.commit() if commit else self._conn.rollback()
        except sqlite3.Error as exc:
            raise wrapped("COMMIT" if commit else "ROLLBACK", (), exc) from exc


def wrapped(sql: str, params: Any, exc: sqlite3.Error) -> BaseException:
    """A sqlite3 error as the SQLAlchemy exception its own path raises."""
    return DBAPIError.instance(sql, params, exc, sqlite3.Error)
