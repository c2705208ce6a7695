"""Units of work on one connection, and the runner each session or unit runs statements on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from ..inline_sqlite import InlineConnection
from .asyncpg import AsyncpgRunner
from .base import Runner
from .sqlite import SqliteRunner


class Unit:
    """A unit of work whose hot statements go through the runner on one connection, with an
    ORM session on the same connection and transaction made only when something needs one
    (see `Database.unit`). Most batches never need it, and skip the session's cost."""

    def __init__(
        self,
        conn: AsyncConnection,
        runner: Runner,
        sessions: Callable[[], AsyncSession] | None = None,
    ) -> None:
        self.conn = conn
        self.runner = runner
        # Read units share their connection: their ORM reads get a session of their own.
        self._sessions = sessions
        self._session: AsyncSession | None = None

    async def session(self) -> AsyncSession:
        if self._session is None and self._sessions is not None:
            self._session = self._sessions()
        if self._session is None:
            if not self.conn.in_transaction():
                await self.conn.begin()
            # The session joins the unit's transaction: its commit only flushes; the unit
            # commits (or rolls back) the connection itself.
            self._session = AsyncSession(
                bind=self.conn, join_transaction_mode="rollback_only", expire_on_commit=False
            )
        return self._session

    async def finish(self, commit: bool) -> None:
        """Commits or rolls back the unit's work."""
        session, self._session = self._session, None
        if self._sessions is not None:  # a read unit: nothing of its own to commit
            if session is not None:
                await session.close()
            return
        if session is not None:
            try:
                if commit:
                    await session.commit()  # flushes; the transaction stays the unit's
            finally:
                await session.close()
        if self.conn.in_transaction():
            await (self.conn.commit() if commit else self.conn.rollback())
        elif isinstance(self.runner, SqliteRunner):
            # Only the driver was used: sqlite3 began its transaction at the first write.
            self.runner.end(commit)


# Where hot statements may run: an ORM session's transaction, or a unit of work.
Conn = AsyncSession | Unit


def engine_of(s: Conn) -> Engine:
    """The engine behind a unit or session. Caches of database content are per database
    (tests run several in one process) and keyed by it: an engine hashes by identity, where
    a URL renders itself as text on every hash."""
    bind: Any = s.conn if isinstance(s, Unit) else s.bind
    return cast(Engine, bind.sync_engine)


async def orm(s: Conn) -> AsyncSession:
    """An ORM session in the same transaction as `s`."""
    return await s.session() if isinstance(s, Unit) else s


_RUNNER = "attain.bulk.runner"


async def runner_of(s: Conn) -> Runner:
    """The unit of work's runner, made once per transaction of the session."""
    if isinstance(s, Unit):
        return s.runner
    runner = s.info.get(_RUNNER)
    if runner is None:
        runner = s.info[_RUNNER] = await runner_for(await s.connection())
    return cast(Runner, runner)


def driver_closed(runner: Runner) -> bool:
    """Whether the driver connection under a PostgreSQL runner is known to be closed."""
    return isinstance(runner, AsyncpgRunner) and bool(runner.driver.is_closed())


async def runner_for(conn: AsyncConnection, *, transaction: bool = True) -> Runner:
    """The runner for `conn`. `transaction=False` (PostgreSQL reads): each statement runs
    on its own instead of in a transaction begun for it."""
    pooled = await conn.get_raw_connection()
    raw = pooled.driver_connection
    if isinstance(raw, InlineConnection) and raw.connection is not None:
        return SqliteRunner(raw.connection, conn.dialect)
    adapted = pooled.dbapi_connection
    if isinstance(adapted, AsyncAdapt_asyncpg_connection):
        return AsyncpgRunner(adapted, raw, conn.dialect, transaction)
    raise TypeError(f"no bulk runner for {conn.dialect.name}+{conn.dialect.driver}")


@event.listens_for(Session, "after_transaction_end")
def _forget_runner(session: Session, transaction: Any) -> None:
    # The next transaction of a session may use another connection.
    if transaction.parent is None:
        session.info.pop(_RUNNER, None)
