"""The database: one async engine, units of work, and Alembic migrations applied at start."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.store import _runner
from attain_server.store.inline_sqlite import inline_creator

log = structlog.get_logger("attain.store")

MIGRATIONS = Path(__file__).with_name("migrations")
# How often the SQLite WAL is checkpointed off the event loop (see _Checkpointer).
CHECKPOINT_SECONDS = 0.25
# Any constant works: it only has to be the same for every replica of Attain.
MIGRATION_LOCK_KEY = 0x4174_7461_696E


# Page cache of the SQLite connections that serve ingest and hot reads, in KiB (SQLite's
# default is 2,000). A progress update took 21 µs with the default and 10 µs with this.
HOT_CACHE_KIB = 32 * 1024

# PostgreSQL connections kept between reads, and as many between units of work, out of the
# pool's 30: more in flight check out and return as before.
PG_KEPT_CONNECTIONS = 4


class Database:
    """An async engine plus the rules of the road for units of work on it.

    SQLite allows one writer at a time: writes of this process queue on an asyncio lock
    instead of failing with "database is locked". PostgreSQL needs no such lock; its
    constraints and row locks arbitrate between replicas.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        # JSON columns (lines, tallies, definitions) are read and written for every row of
        # a batch: orjson does it several times faster than the json module, same data.
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        if self.dialect == "sqlite":
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # sqlite3 on the loop's own thread instead of aiosqlite's worker (decision 0009).
            kwargs["async_creator"] = inline_creator(self.url.update_query_dict({"timeout": "30"}))
        else:
            # No pool_pre_ping: for asyncpg it costs three round trips per checkout (BEGIN,
            # SELECT, ROLLBACK), more than a GetProgress's own reads. A connection the
            # server closed (a restart) is known closed locally and replaced at checkout;
            # see docs/decisions/0010-hot-paths-on-the-driver.md.
            # LIFO: calls one after another reuse the connection (and the backend) that just
            # served one, warm in its caches, instead of going round the whole pool. A
            # GetProgress in process: p50 0.41 ms FIFO, 0.35 LIFO (decision 0012).
            kwargs.update(pool_size=10, max_overflow=20, pool_use_lifo=True)
        self.engine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "checkout", _replace_closed)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._sqlite_writer: _runner.Unit | None = None
        self._sqlite_reader: _runner.Unit | None = None
        # PostgreSQL: connections kept out of the pool between reads and between units of
        # work, most recent last.
        self._pg_readers: list[tuple[AsyncConnection, _runner.Runner]] = []
        self._pg_units: list[tuple[AsyncConnection, _runner.Runner]] = []
        self._checkpointer: _Checkpointer | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _writer(self) -> AbstractAsyncContextManager[Any]:
        return self._write_lock if self._write_lock is not None else nullcontext()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One unit of work that writes: commits at the end, or rolls back on any error."""
        async with self._writer(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[_runner.Unit]:
        """A unit of work that writes, for hot paths: its statements go through
        `store._runner` on the driver, and an ORM session is made only if asked for. Commits at
        the end, or rolls back on any error."""
        if self._write_lock is None:
            async with self._pg_unit() as unit:
                yield unit
            return
        async with self._write_lock:
            # SQLite: writes are serialised anyway, so one connection serves them all.
            if self._sqlite_writer is None:
                self._sqlite_writer = await self._sqlite_unit_connection(writer=True)
            unit = self._sqlite_writer
            try:
                yield unit
            except BaseException:
                await unit.finish(commit=False)
                raise
            try:
                await unit.finish(commit=True)
            except BaseException:
                # A failed COMMIT can leave the transaction open on the connection, and the
                # SQLite writer connection serves the next unit: end it here.
                with contextlib.suppress(Exception):
                    await unit.finish(commit=False)
                raise

    @asynccontextmanager
    async def _pg_unit(self) -> AsyncIterator[_runner.Unit]:
        """A PostgreSQL unit of work, on a connection kept from an earlier unit when there is
        one (as for reads): it goes back to that list only once it has committed."""
        conn, runner = await self._pg_connection(self._pg_units, transaction=True)
        clean = False
        try:
            await conn.begin()
            unit = _runner.Unit(conn, runner)
            try:
                yield unit
            except BaseException:
                await unit.finish(commit=False)
                raise
            await unit.finish(commit=True)  # ends the connection's transaction
            clean = True
        finally:
            await self._pg_release(self._pg_units, conn, runner, clean)

    async def _sqlite_unit_connection(self, writer: bool = False) -> _runner.Unit:
        conn = await self.engine.connect()
        unit = _runner.Unit(conn, await _runner.runner_for(conn))
        database = self.url.database
        if writer and database and database != ":memory:" and self._checkpointer is None:
            # The hot writer leaves checkpoints to a thread of their own (see _Checkpointer).
            await conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            await conn.commit()  # units begin their own transactions
            self._checkpointer = _Checkpointer(database)
            self._checkpointer.start()
        # The hot connections keep more of the progress table and the indexes ingest writes
        # in memory than SQLite's default 2 MiB (decision 0012).
        await conn.exec_driver_sql(f"PRAGMA cache_size=-{HOT_CACHE_KIB}")
        await conn.commit()
        return unit

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[_runner.Unit]:
        """A read-only unit of work for hot reads through `store._runner`. On SQLite its
        statements run on one shared connection without a transaction (each sees what is
        committed; they run on the loop's thread, so no write lands between two of them);
        an ORM session, if asked for, is a separate read session."""
        if self._write_lock is not None:
            if self._sqlite_reader is None:
                self._sqlite_reader = await self._sqlite_unit_connection()
            unit = _runner.Unit(self._sqlite_reader.conn, self._sqlite_reader.runner, self.sessions)
            try:
                yield unit
            finally:
                await unit.finish(commit=False)
            return
        # PostgreSQL: each read is a statement of its own (no BEGIN/ROLLBACK round trips), on
        # a connection kept from an earlier read when there is one: a checkout from the pool
        # and its return cost about 80 µs of CPU, a quarter of a GetProgress (decision 0012).
        conn, runner = await self._pg_connection(self._pg_readers, transaction=False)
        unit = _runner.Unit(conn, runner, self.sessions)
        clean = False
        try:
            yield unit
            await unit.finish(commit=False)
            if conn.in_transaction():  # something began one on it: end it before keeping it
                await conn.rollback()
            clean = True
        finally:
            await self._pg_release(self._pg_readers, conn, runner, clean)

    async def _pg_connection(
        self, kept: list[tuple[AsyncConnection, _runner.Runner]], *, transaction: bool
    ) -> tuple[AsyncConnection, _runner.Runner]:
        """The connection kept last in `kept`, or one from the pool."""
        while kept:
            conn, runner = kept.pop()
            if not _runner.driver_closed(runner):
                return conn, runner
            # The server closed it (a restart): the pool discards it.
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()
        conn = await self.engine.connect()
        try:
            return conn, await _runner.runner_for(conn, transaction=transaction)
        except BaseException:
            await conn.close()
            raise

    async def _pg_release(
        self,
        kept: list[tuple[AsyncConnection, _runner.Runner]],
        conn: AsyncConnection,
        runner: _runner.Runner,
        clean: bool,
    ) -> None:
        """Keeps a connection whose work ended cleanly; any other (an error, a cancellation:
        it may be mid-statement) goes back to the pool, which resets or discards it."""
        if clean and len(kept) < PG_KEPT_CONNECTIONS:
            kept.append((conn, runner))
        else:
            await conn.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work."""
        async with self.sessions() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Brings the schema to the newest revision; safe when several replicas start at once."""
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                await conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            try:
                await conn.run_sync(_upgrade)
                await conn.commit()
            finally:
                if self.dialect == "postgresql":
                    await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                    await conn.commit()

    async def dispose(self) -> None:
        kept = self._pg_readers + self._pg_units
        self._pg_readers, self._pg_units = [], []
        for conn, _ in kept:
            await conn.close()
        for unit in (self._sqlite_writer, self._sqlite_reader):
            if unit is not None:
                await unit.conn.close()
        self._sqlite_writer = self._sqlite_reader = None
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        await self.engine.dispose()


class _Checkpointer(threading.Thread):
    """Checkpoints the SQLite WAL from a thread of its own.

    With SQLite's automatic checkpoints, the commit that crosses 1,000 WAL pages copies them
    into the database file and syncs it, on the event loop: a pause of 20 to 35 ms every
    ~150 single-transaction commits here, and twice the mean commit time. The hot writer
    connection turns them off, and this thread runs a PASSIVE checkpoint (it never waits
    for, nor blocks, readers and the writer) every CHECKPOINT_SECONDS. If the thread is
    gone, the WAL grows until the next connection that checkpoints, or the last close.
    """

    def __init__(self, path: str) -> None:
        super().__init__(name="attain-sqlite-checkpoint", daemon=True)
        self._path = path
        self._stopping = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=30)
        try:
            while not self._stopping.wait(CHECKPOINT_SECONDS):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    log.warning("sqlite checkpoint failed", error=str(exc))
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _replace_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Checkout: a connection whose socket is gone is discarded and the pool connects anew."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the database closed this connection")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
