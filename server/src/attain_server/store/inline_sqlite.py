"""SQLite on the event loop's own thread, behind SQLAlchemy's aiosqlite dialect.

aiosqlite runs every call (execute, fetch, cursor close, commit) on a worker thread and
wakes the event loop for each answer. Attain's statements are short (point reads, batched
writes of a few milliseconds), so the hops cost more than the work: a GetProgress spent
most of its time in about twenty of them. This module gives the dialect an object with
aiosqlite's interface whose coroutines call the `sqlite3` connection directly and return
without suspending, so SQLAlchemy's `await_` completes in place. See
docs/decisions/0009-sqlite-on-the-event-loop.md.

Only SQLite's embedded mode (one process) uses it. A statement blocks the loop while it
runs; writes of the process are already serialised by `Database`'s lock, and in WAL mode
readers never wait for the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL


class InlineCursor:
    """aiosqlite.Cursor's interface over a sqlite3 cursor, without a thread."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """aiosqlite.Connection's interface (as SQLAlchemy's adapter uses it) over sqlite3."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = connection

    @property
    def connection(self) -> sqlite3.Connection | None:
        """The sqlite3 connection, None once closed (the driver runner runs on it)."""
        return self._conn

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """SQLAlchemy's aiosqlite adapter checks it to tell an open connection from a
        closed one (aiosqlite's own attribute, mirrored)."""
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._open().cursor())

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._open().isolation_level = value  # type: ignore[assignment]

    async def create_function(
        self, name: str, num_params: int, func: Callable[..., Any], **kwargs: Any
    ) -> None:
        self._open().create_function(name, num_params, func, **kwargs)

    async def commit(self) -> None:
        self._open().commit()

    async def rollback(self) -> None:
        self._open().rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def inline_creator(url: URL) -> Callable[[], Awaitable[InlineConnection]]:
    """An `async_creator` for create_async_engine: connects as the pysqlite dialect would."""
    args, kwargs = SQLiteDialect_pysqlite().create_connect_args(url)
    kwargs["check_same_thread"] = False  # the pool may close a connection from a GC hook

    async def connect() -> InlineConnection:
        return InlineConnection(sqlite3.connect(*args, **kwargs))  # type: ignore[call-overload]

    return connect
