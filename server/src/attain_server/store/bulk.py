"""Hot statements without SQLAlchemy's per-statement machinery.

An ingest batch or a progress read runs a handful of statements of fixed shapes, and
SQLAlchemy's generic path (cache keys, compilation lookup, parameter building, the greenlet
bridge, result wrapping) costs more than the SQL itself: profiles showed a single-transaction
ingest spending most of its time there. Here a statement is compiled once per shape and
dialect; each row becomes a tuple through the same bind processors the column types define
(UTC datetimes, exact decimals, JSON) in one tight loop; results come back as named tuples
through the types' result processors. The values reaching the database are the ones
SQLAlchemy would send, and driver errors still arrive as SQLAlchemy's exceptions
(IntegrityError and the rest).

On SQLite the statements go straight to the `sqlite3` connection of the unit of work (it
runs on the event loop's thread, decision 0009); on PostgreSQL straight to the asyncpg
connection, inside the transaction SQLAlchemy's adapter keeps for it. Either way they run
inside the unit of work's transaction, and an ORM session of the same unit sees them.

IN lists are bound as separate parameters, their count rounded up to a power of two (the
last value repeated), so a handful of compiled shapes serve every list length.

On PostgreSQL, writes of many rows go as sets (decision 0011): a plain INSERT of several
rows is a binary COPY, and `update_rows` is one UPDATE joined to the rows as arrays. Both
report how many rows they wrote, as sqlite3 does.
"""

from __future__ import annotations

import json
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from sqlalchemy import JSON, Insert, Table, bindparam, event, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel.ext.asyncio.session import AsyncSession

from .inline_sqlite import InlineConnection

# Largest IN list one statement binds; longer lists are split.
IN_CHUNK = 512

# Inserts of at least this many rows go through COPY on PostgreSQL.
COPY_FROM_ROWS = 2


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    # A row (dict) to its positional parameters, processed.
    make: Callable[[dict[str, Any]], tuple[Any, ...]]
    # A plain INSERT: its table and the columns in parameter order, for a COPY instead.
    copy: tuple[str, tuple[str, ...]] | None = None


_PLANS: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}


# ---------------------------------------------------------------- the connection


class _Runner:
    """Runs compiled SQL on the connection of one unit of work."""

    __slots__ = ()
    dialect: Dialect

    async def many(
        self, sql: str, rows: list[tuple[Any, ...]], copy: tuple[str, tuple[str, ...]] | None
    ) -> int:
        """Runs `sql` once per row; `copy` (table, columns) says it may be a COPY instead."""
        raise NotImplementedError

    async def rows(
        self, sql: str, args: tuple[Any, ...], describe: bool
    ) -> tuple[Sequence[Any], Any]:
        """The raw rows, and the cursor description when `describe`."""
        raise NotImplementedError


class _Sqlite(_Runner):
    __slots__ = ("_conn", "dialect")

    def __init__(self, conn: sqlite3.Connection, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect

    async def many(
        self, sql: str, rows: list[tuple[Any, ...]], copy: tuple[str, tuple[str, ...]] | None
    ) -> int:
        try:
            return self._conn.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise _wrapped(sql, rows[:1], exc) from exc

    async def rows(
        self, sql: str, args: tuple[Any, ...], describe: bool
    ) -> tuple[Sequence[Any], Any]:
        try:
            cursor = self._conn.execute(sql, args)
            return cursor.fetchall(), cursor.description
        except sqlite3.Error as exc:
            raise _wrapped(sql, args, exc) from exc

    def end(self, commit: bool) -> None:
        try:
            self._conn.commit() if commit else self._conn.rollback()
        except sqlite3.Error as exc:
            raise _wrapped("COMMIT" if commit else "ROLLBACK", (), exc) from exc


def _wrapped(sql: str, params: Any, exc: sqlite3.Error) -> BaseException:
    return DBAPIError.instance(sql, params, exc, sqlite3.Error)


class _Asyncpg(_Runner):
    """asyncpg directly, inside the transaction SQLAlchemy's adapter keeps for the
    connection (begun here if no statement began it yet): no greenlet hop, no execution
    context. Errors are translated as the adapter translates them."""

    __slots__ = ("_adapted", "_driver", "_transaction", "dialect")

    def __init__(self, adapted: Any, dialect: Dialect, transaction: bool) -> None:
        self._adapted = adapted
        self._driver = adapted._connection
        self._transaction = transaction
        self.dialect = dialect

    async def _begin(self) -> None:
        if self._transaction and self._adapted._transaction is None:
            try:
                await self._adapted._start_transaction()
            except BaseException:
                # A BEGIN cut off (a cancelled call) leaves asyncpg inside a transaction
                # that SQLAlchemy never learnt of, so no rollback reaches it: the next BEGIN
                # on this pooled connection would become a SAVEPOINT in it, and every commit
                # after that would be lost. Closed, the pool replaces it at checkout.
                self._driver.terminate()
                raise

    def _error(self, sql: str, params: Any, exc: Exception) -> BaseException:
        try:
            self._adapted._handle_exception(exc)
        except Exception as translated:  # the DBAPI-level error the adapter raises
            return DBAPIError.instance(sql, params, translated, self.dialect.loaded_dbapi.Error)
        return exc  # pragma: no cover - _handle_exception always raises

    async def many(
        self, sql: str, rows: list[tuple[Any, ...]], copy: tuple[str, tuple[str, ...]] | None
    ) -> int:
        try:
            await self._begin()
            if copy is not None and len(rows) >= COPY_FROM_ROWS:
                # Binary COPY: the same values through the same codecs, as one stream rather
                # than a Bind and Execute per row (about 40% less time for 1,000 rows).
                table, columns = copy
                status = await self._driver.copy_records_to_table(
                    table, records=rows, columns=columns
                )
                return int(status.rsplit(" ", 1)[-1])  # "COPY <rows>"
            await self._driver.executemany(sql, rows)
        except Exception as exc:
            raise self._error(sql, rows[:1], exc) from exc
        return -1

    async def update_arrays(self, sql: str, arrays: list[list[Any]]) -> int:
        try:
            await self._begin()
            status = await self._driver.execute(sql, *arrays)
        except Exception as exc:
            raise self._error(sql, tuple(a[:1] for a in arrays), exc) from exc
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE <rows>"

    async def rows(
        self, sql: str, args: tuple[Any, ...], describe: bool
    ) -> tuple[Sequence[Any], Any]:
        try:
            await self._begin()
            if describe:
                stmt = await self._driver.prepare(sql)
                records = await stmt.fetch(*args)
                return records, [(a.name, a.type.oid) for a in stmt.get_attributes()]
            return await self._driver.fetch(sql, *args), None
        except Exception as exc:
            raise self._error(sql, args, exc) from exc


class Unit:
    """A unit of work whose hot statements go through this module on one connection, with an
    ORM session on the same connection and transaction made only when something needs one
    (see `Database.unit`). Most batches never need it, and skip the session's cost."""

    def __init__(
        self,
        conn: AsyncConnection,
        runner: _Runner,
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
        elif isinstance(self.runner, _Sqlite):
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


async def _runner(s: Conn) -> _Runner:
    """The unit of work's runner, made once per transaction of the session."""
    if isinstance(s, Unit):
        return s.runner
    runner = s.info.get(_RUNNER)
    if runner is None:
        runner = s.info[_RUNNER] = await runner_for(await s.connection())
    return runner


def driver_closed(runner: _Runner) -> bool:
    """Whether the driver connection under a PostgreSQL runner is known to be closed."""
    return isinstance(runner, _Asyncpg) and bool(runner._driver.is_closed())


async def runner_for(conn: AsyncConnection, *, transaction: bool = True) -> _Runner:
    """The runner for `conn`. `transaction=False` (PostgreSQL reads): each statement runs
    on its own instead of in a transaction begun for it."""
    pooled = await conn.get_raw_connection()
    raw = pooled.driver_connection
    if isinstance(raw, InlineConnection) and raw._connection is not None:
        return _Sqlite(raw._connection, conn.dialect)
    adapted = pooled.dbapi_connection
    if conn.dialect.driver == "asyncpg" and hasattr(adapted, "_start_transaction"):
        return _Asyncpg(adapted, conn.dialect, transaction)
    raise TypeError(f"no bulk runner for {conn.dialect.name}+{conn.dialect.driver}")


@event.listens_for(Session, "after_transaction_end")
def _forget_runner(session: Session, transaction: Any) -> None:
    # The next transaction of a session may use another connection.
    if transaction.parent is None:
        session.info.pop(_RUNNER, None)


# ---------------------------------------------------------------- column processors

# What a JSON value is made of when it is one: serialized directly, anything else (None,
# SQLAlchemy's JSON.NULL and null() markers) through the type's own processor.
_JSON_VALUES = (list, dict, tuple)
# The JSON types whose processors on SQLite are the dialect's serializers and nothing more
# (SQLite's string type processes nothing on the way in or out).
_SQLITE_JSON_TYPES = (JSON, sqlite.JSON)


def _plain_json(type_: Any, dialect: Dialect) -> bool:
    return dialect.name == "sqlite" and type(type_) in _SQLITE_JSON_TYPES


def _bind_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The type's bind processor; for JSON on SQLite, the dialect's serializer called
    directly for lists and dicts (SQLAlchemy's processor wraps it in two more calls, and
    every row of an ingest batch has several JSON values)."""
    general: Callable[[Any], Any] | None = type_._cached_bind_processor(dialect)
    if general is None or not _plain_json(type_, dialect):
        return general
    dumps = getattr(dialect, "_json_serializer", None) or json.dumps
    plain = _JSON_VALUES

    def process(value: Any) -> Any:
        return dumps(value) if type(value) in plain else general(value)

    return process


def _result_processor(type_: Any, dialect: Dialect, code: Any) -> Callable[[Any], Any] | None:
    """The type's result processor; for JSON on SQLite, the dialect's deserializer called
    directly on text (anything else, such as a number SQLite kept as one, goes through the
    type's own processor)."""
    general: Callable[[Any], Any] | None = type_._cached_result_processor(dialect, code)
    if general is None or not _plain_json(type_, dialect):
        return general
    loads = getattr(dialect, "_json_deserializer", None) or json.loads

    def process(value: Any) -> Any:
        return loads(value) if type(value) is str else general(value)

    return process


# ---------------------------------------------------------------- writes


def _row_maker(
    parts: Sequence[tuple[str | None, Any]],
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """One function from a row to its parameters: per part (row key, processor) a processed
    value, or (None, value) a constant. Generated as one expression, so a row costs one call
    rather than a call per column (this runs for every row of every batch)."""
    items = [
        ("@", obj)
        if name is None
        else (f"row[{name!r}]", None)
        if obj is None
        else (f"@(row[{name!r}])", obj)
        for name, obj in parts
    ]
    return cast(Callable[[dict[str, Any]], tuple[Any, ...]], _generated("row", "({},)", items, {}))


_UNBOUND = object()  # an item of `_generated` that binds no object


def _generated(
    arg: str, result: str, items: Sequence[tuple[str, Any]], env: dict[str, Any]
) -> Callable[[Any], Any]:
    """`def f(arg): return result` with the items' expressions joined into `result`'s `{}`;
    an item's `@` names its object (an item without one has _UNBOUND)."""
    texts = []
    for i, (expression, obj) in enumerate(items):
        if obj is not _UNBOUND:
            env[f"b{i}"] = obj
            expression = expression.replace("@", f"b{i}")
        texts.append(expression)
    exec(f"def f({arg}):\n    return {result.format(', '.join(texts))}\n", env)
    return cast(Callable[[Any], Any], env["f"])


def _plan(stmt: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=list(keys)))
    order = compiled.positiontup
    if order is None:  # pragma: no cover - both dialects Attain uses are positional
        raise TypeError(f"{dialect.name} has a named paramstyle")
    parts: list[tuple[str | None, Any]] = []
    for name in order:
        bind = compiled.binds[name]
        processor = _bind_processor(bind.type, dialect)
        if name in keys:
            parts.append((name, processor))
            continue
        if bind.value is not None:
            value = bind.value  # a literal of the statement, e.g. .values(state="REVERSED")
        else:
            # A column the rows leave out: SQLAlchemy adds it when the column has a Python
            # default. Only scalar defaults are taken here; anything else must be given.
            column = getattr(getattr(compiled.statement, "table", None), "c", {}).get(name)
            column_default = getattr(column, "default", None)
            if column_default is None or not column_default.is_scalar:
                raise KeyError(f"bulk statement needs a value for {name!r}")
            value = column_default.arg
        parts.append((None, value if processor is None else processor(value)))
    return _Plan(compiled.string, _row_maker(parts), _copy_target(stmt, order))


def _copy_target(stmt: ClauseElement, order: Sequence[str]) -> tuple[str, tuple[str, ...]] | None:
    """(table, columns in parameter order) when `stmt` is a plain INSERT of one row's
    values: no RETURNING, no ON CONFLICT, no SELECT."""
    if not isinstance(stmt, Insert) or stmt._returning or stmt.select is not None:
        return None
    if stmt._post_values_clause is not None or stmt._multi_values:
        return None
    table = stmt.table
    if not isinstance(table, Table) or table.schema is not None:
        return None
    names = []
    for key in order:
        column = table.c.get(key)
        if column is None:
            return None
        names.append(column.name)
    return table.name, tuple(names)


async def executemany(
    s: Conn, key: str, build: Callable[[], ClauseElement], rows: Sequence[dict[str, Any]]
) -> int:
    """Runs the statement `build()` once per row of `rows` (dicts with the same keys);
    returns the driver's row count (-1 where it does not tell: asyncpg's executemany).
    `key` names the statement shape for the plan cache. On PostgreSQL, a plain INSERT of
    several rows is a binary COPY of the same values."""
    if not rows:
        return 0
    runner = await _runner(s)
    keys = tuple(rows[0])
    cache_key = (key, runner.dialect.name, keys)
    plan = _PLANS.get(cache_key)
    if plan is None:
        plan = _PLANS[cache_key] = _plan(build(), runner.dialect, keys)
    return await runner.many(plan.sql, list(map(plan.make, rows)), plan.copy)


async def update_rows(
    s: Conn,
    key: str,
    table: Table,
    match: Sequence[tuple[str, str]],
    values: Sequence[str],
    rows: Sequence[dict[str, Any]],
) -> int:
    """For each row: ``UPDATE table SET <values> WHERE <match>``; returns how many table rows
    changed, on both databases.

    `match` pairs a column with the row key holding the value it must have (the row keys of
    a match differ from the column names, so a column may be both matched and set, as a
    version is); `values` are columns set from the row keys of the same name. On SQLite this
    is an executemany of the one-row UPDATE. On PostgreSQL it is one UPDATE joined to the
    rows as arrays (`unnest`): one statement and one reply, where an executemany sends and
    answers one per row and does not count them. The rows' match values must be distinct
    (on PostgreSQL a table row matched twice is updated once and counted once).
    """
    if not rows:
        return 0
    runner = await _runner(s)
    if not isinstance(runner, _Asyncpg):
        return await executemany(
            s,
            key,
            lambda: (
                update(table)
                .where(*(table.c[column] == bindparam(name) for column, name in match))
                .values({column: bindparam(column) for column in values})
            ),
            rows,
        )
    dialect = runner.dialect
    plan = _ARRAY_UPDATES.get(key)
    if plan is None:
        plan = _ARRAY_UPDATES[key] = _array_update(table, match, values, dialect)
    sql, params = plan
    arrays = [
        [row[name] for row in rows] if processor is None else [processor(row[name]) for row in rows]
        for name, processor in params
    ]
    return await runner.update_arrays(sql, arrays)


_ARRAY_UPDATES: dict[str, tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]] = {}


def _array_update(
    table: Table, match: Sequence[tuple[str, str]], values: Sequence[str], dialect: Dialect
) -> tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]:
    """The PostgreSQL statement of `update_rows`: each parameter is an array of one column's
    values, typed as the column (`$1::VARCHAR(64)[]`), and the rows are `unnest`ed."""
    quote = dialect.identifier_preparer.quote
    columns = [*(column for column, _ in match), *values]
    names = [*(name for _, name in match), *values]
    casts = ", ".join(
        f"${i}::{table.c[column].type.compile(dialect=dialect)}[]"
        for i, column in enumerate(columns, start=1)
    )
    aliases = ", ".join(f"p{i}" for i in range(len(columns)))
    sets = ", ".join(f"{quote(column)} = v.p{len(match) + i}" for i, column in enumerate(values))
    where = " AND ".join(f"t.{quote(column)} = v.p{i}" for i, (column, _) in enumerate(match))
    sql = (
        f"UPDATE {quote(table.name)} AS t SET {sets} "
        f"FROM unnest({casts}) AS v({aliases}) WHERE {where}"
    )
    params = tuple(
        (name, table.c[column].type._cached_bind_processor(dialect))
        for column, name in zip(columns, names, strict=True)
    )
    return sql, params


# ---------------------------------------------------------------- reads


@dataclass
class _ReadPlan:
    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    types: tuple[Any, ...]
    row_type: type
    literals: dict[str, Any]
    # Result processors depend on the column types the driver reports (PostgreSQL's
    # NUMERIC among others), so they are made at the first execution.
    processors: tuple[Callable[[Any], Any] | None, ...] | None = None
    # A driver row to its named tuple, made with the processors.
    convert: Callable[[Any], Any] | None = None


_READS: dict[tuple[str, str], _ReadPlan] = {}


def _read_plan(stmt: ClauseElement, dialect: Dialect, key: str) -> _ReadPlan:
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    order = compiled.positiontup or ()
    binds = tuple((name, _bind_processor(compiled.binds[name].type, dialect)) for name in order)
    # Values the statement carries itself (a LIMIT, a literal), for names `params` leaves out.
    literals = {
        name: compiled.binds[name].value for name in order if compiled.binds[name].value is not None
    }
    entries = compiled._result_columns  # (keyname, name, objects, type) per selected column
    row_type = namedtuple(  # type: ignore[misc]
        "Row_" + "".join(c if c.isalnum() else "_" for c in key),
        [entry[0] for entry in entries],
        rename=True,
    )
    return _ReadPlan(
        compiled.string, binds, tuple(entry[3] for entry in entries), row_type, literals
    )


async def _run_read(
    runner: _Runner, key: str, build: Callable[[], ClauseElement], params: dict[str, Any]
) -> list[Any]:
    dialect = runner.dialect
    plan = _READS.get((key, dialect.name))
    if plan is None:
        plan = _READS[(key, dialect.name)] = _read_plan(build(), dialect, key)
    if plan.literals:
        params = {**plan.literals, **params}
    args = tuple(
        [
            params[name] if processor is None else processor(params[name])
            for name, processor in plan.binds
        ]
    )
    raw_rows, description = await runner.rows(plan.sql, args, plan.processors is None)
    processors = plan.processors
    if processors is None:
        codes = [d[1] for d in description] if description else [None] * len(plan.types)
        processors = plan.processors = tuple(
            _result_processor(t, dialect, code) for t, code in zip(plan.types, codes, strict=True)
        )
        plan.convert = _row_converter(plan.row_type, processors)
    assert plan.convert is not None
    return list(map(plan.convert, raw_rows))


def _row_converter(
    row_type: type, processors: Sequence[Callable[[Any], Any] | None]
) -> Callable[[Any], Any]:
    """One function from a driver row to a named tuple of processed values (None stays
    None), generated as one expression like `_row_maker`."""
    if not any(processors):
        return lambda raw: row_type(*raw)
    items = [
        (f"raw[{i}]", _UNBOUND)
        if p is None
        else (f"(None if raw[{i}] is None else @(raw[{i}]))", p)
        for i, p in enumerate(processors)
    ]
    return _generated("raw", "make({})", items, {"make": row_type})


async def fetch(
    s: Conn, key: str, build: Callable[[], ClauseElement], params: dict[str, Any]
) -> list[Any]:
    """Rows of a hot read, as named tuples with processed values (JSON decoded, instants
    aware, decimals exact): the statement is compiled once per `key` and dialect, then run
    through the driver directly. `build()` must use bindparam()s named like `params`."""
    return await _run_read(await _runner(s), key, build, params)


def in_list(column: ColumnElement[Any], size: int, name: str = "v") -> ColumnElement[bool]:
    """`column IN (:v_0, ..., :v_<size-1>)`, for `fetch_in`'s `build(size)`."""
    return column.in_([bindparam(f"{name}_{i}") for i in range(size)])


def _sizes(count: int) -> int:
    size = 1
    while size < count:
        size *= 2
    return size


async def fetch_in(
    s: Conn,
    key: str,
    build: Callable[[int], ClauseElement],
    params: dict[str, Any],
    values: Iterable[Any],
    name: str = "v",
) -> list[Any]:
    """`fetch` of a statement with one IN list (made by `in_list(column, size, name)` inside
    `build(size)`) over `values` (distinct), in chunks of at most IN_CHUNK; rows come in
    chunk order."""
    runner = await _runner(s)
    items = list(values)
    out: list[Any] = []
    for start in range(0, len(items), IN_CHUNK):
        chunk = items[start : start + IN_CHUNK]
        size = _sizes(len(chunk))
        bound = dict(params)
        for i in range(size):
            bound[f"{name}_{i}"] = chunk[i] if i < len(chunk) else chunk[-1]
        out += await _run_read(runner, f"{key}#{size}", partial(build, size), bound)
    return out
