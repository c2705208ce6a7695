"""Declarative statements for repositories: each object keeps its plans per dialect."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import Table
from sqlalchemy.sql import ClauseElement

from .plans import ArrayUpdate, ReadPlan, WritePlan
from .statements import in_chunks, read_with, update_with, write_with
from .units import Conn, runner_of

RowT = TypeVar("RowT")

_EMPTY: Mapping[str, Any] = {}


def _pick(
    dialect: str,
    build: Callable[..., ClauseElement],
    postgresql: Callable[..., ClauseElement] | None,
) -> Callable[..., ClauseElement]:
    return postgresql if postgresql is not None and dialect == "postgresql" else build


class Query(Generic[RowT]):
    """A read: `build()` makes the statement (bindparam()s named like the params);
    `postgresql`, if given, makes it on PostgreSQL instead (row locks, for instance).
    Rows come as `row` (a NamedTuple whose fields are the selected column names) or as
    named tuples made from the column names."""

    @overload
    def __init__(
        self: Query[Any],
        build: Callable[[], ClauseElement],
        *,
        postgresql: Callable[[], ClauseElement] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        build: Callable[[], ClauseElement],
        *,
        row: type[RowT],
        postgresql: Callable[[], ClauseElement] | None = None,
    ) -> None: ...
    def __init__(
        self,
        build: Callable[[], ClauseElement],
        *,
        row: type[RowT] | None = None,
        postgresql: Callable[[], ClauseElement] | None = None,
    ) -> None:
        self._build = build
        self._postgresql = postgresql
        self._row = row
        self._plans: dict[Any, ReadPlan] = {}

    async def rows(self, s: Conn, params: Mapping[str, Any] = _EMPTY) -> list[RowT]:
        runner = await runner_of(s)
        build = _pick(runner.dialect.name, self._build, self._postgresql)
        return await read_with(runner, self._plans, "query", build, params, self._row)


class QueryIn(Generic[RowT]):
    """A read with one IN list: `build(size)` puts `in_list(column, size, name)` in the
    statement; `rows` runs it over the values in chunks (rows in chunk order)."""

    @overload
    def __init__(
        self: QueryIn[Any],
        build: Callable[[int], ClauseElement],
        *,
        name: str = "v",
        postgresql: Callable[[int], ClauseElement] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        build: Callable[[int], ClauseElement],
        *,
        row: type[RowT],
        name: str = "v",
        postgresql: Callable[[int], ClauseElement] | None = None,
    ) -> None: ...
    def __init__(
        self,
        build: Callable[[int], ClauseElement],
        *,
        row: type[RowT] | None = None,
        name: str = "v",
        postgresql: Callable[[int], ClauseElement] | None = None,
    ) -> None:
        self._build = build
        self._postgresql = postgresql
        self._row = row
        self._name = name
        self._plans: dict[Any, ReadPlan] = {}

    async def rows(self, s: Conn, params: Mapping[str, Any], values: Iterable[Any]) -> list[RowT]:
        runner = await runner_of(s)
        build = _pick(runner.dialect.name, self._build, self._postgresql)
        out: list[RowT] = []
        for size, bound in in_chunks(params, values, self._name):
            out += await read_with(
                runner, self._plans, size, partial(build, size), bound, self._row
            )
        return out


class Write:
    """A statement run once per row (dicts with the same keys); on PostgreSQL a plain
    INSERT of several rows is a binary COPY of the same values."""

    def __init__(
        self,
        build: Callable[[], ClauseElement],
        *,
        postgresql: Callable[[], ClauseElement] | None = None,
    ) -> None:
        self._build = build
        self._postgresql = postgresql
        self._plans: dict[Any, WritePlan] = {}

    async def run(self, s: Conn, rows: Sequence[Mapping[str, Any]]) -> int:
        """Returns the driver's row count (-1 where it does not tell)."""
        if not rows:
            return 0
        runner = await runner_of(s)
        build = _pick(runner.dialect.name, self._build, self._postgresql)
        return await write_with(runner, self._plans, "write", build, rows)


class UpdateRows:
    """For each row: ``UPDATE table SET <values> WHERE <match>``; `run` returns how many
    table rows changed, on both databases.

    `match` pairs a column with the row key holding the value it must have (the row keys of
    a match differ from the column names, so a column may be both matched and set, as a
    version is); `values` are columns set from the row keys of the same name. On SQLite this
    is an executemany of the one-row UPDATE. On PostgreSQL it is one UPDATE joined to the
    rows as arrays (`unnest`): one statement and one reply, where an executemany sends and
    answers one per row and does not count them. The rows' match values must be distinct
    (on PostgreSQL a table row matched twice is updated once and counted once).
    """

    def __init__(
        self, table: Table, *, match: Sequence[tuple[str, str]], values: Sequence[str]
    ) -> None:
        self._table = table
        self._match = tuple(match)
        self._values = tuple(values)
        self._plans: dict[Any, WritePlan] = {}
        self._arrays: dict[str, ArrayUpdate] = {}

    async def run(self, s: Conn, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        runner = await runner_of(s)
        return await update_with(
            runner, self._plans, self._arrays, self._table, self._match, self._values, rows
        )
