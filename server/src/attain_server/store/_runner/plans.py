"""Statements compiled once per shape and dialect, and rows through the types' processors.

A plan holds the SQL and one function from a row to its parameters (or from a driver row to
a named tuple), made of closures over the column types' own bind and result processors, so
the values reaching the database are the ones SQLAlchemy would send.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import JSON, Insert, Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ReturnsRows
from sqlalchemy.types import NullType, TypeEngine

from .base import CopyTarget
from .library import json_codec

Processor = Callable[[Any], Any]
RowMaker = Callable[[Mapping[str, Any]], tuple[Any, ...]]

# What a JSON value is made of when it is one: serialized directly, anything else (None,
# SQLAlchemy's JSON.NULL and null() markers) through the type's own processor.
_JSON_VALUES = (list, dict, tuple)
# The JSON types whose processors on SQLite are the dialect's serializers and nothing more
# (SQLite's string type processes nothing on the way in or out).
_SQLITE_JSON_TYPES = (JSON, sqlite.JSON)


def _plain_json(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    return dialect.name == "sqlite" and type(type_) in _SQLITE_JSON_TYPES


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """The type's bind processor; for JSON on SQLite, the dialect's serializer called
    directly for lists and dicts (SQLAlchemy's processor wraps it in two more calls, and
    every row of an ingest batch has several JSON values)."""
    general = type_.dialect_impl(dialect).bind_processor(dialect)
    if general is None or not _plain_json(type_, dialect):
        return general
    dumps = json_codec(dialect)[0]
    plain = _JSON_VALUES

    def process(value: Any) -> Any:
        return dumps(value) if type(value) in plain else general(value)

    return process


def result_processor(type_: TypeEngine[Any], dialect: Dialect, code: Any) -> Processor | None:
    """The type's result processor; for JSON on SQLite, the dialect's deserializer called
    directly on text (anything else, such as a number SQLite kept as one, goes through the
    type's own processor)."""
    general = type_.dialect_impl(dialect).result_processor(dialect, code)
    if general is None or not _plain_json(type_, dialect):
        return general
    loads = json_codec(dialect)[1]

    def process(value: Any) -> Any:
        return loads(value) if type(value) is str else general(value)

    return process


# ---------------------------------------------------------------- writes


@dataclass(frozen=True, slots=True)
class WritePlan:
    sql: str
    # A row (dict) to its positional parameters, processed.
    make: RowMaker
    # A plain INSERT, which may be a COPY instead.
    copy: CopyTarget | None = None


def row_maker(parts: Sequence[tuple[str | None, Any]]) -> RowMaker:
    """One function from a row to its parameters: per part (row key, processor) a processed
    value, or (None, value) a constant. It runs for every row of every batch: the values
    come out in one `itemgetter` call, and only the processed ones take a loop turn."""
    keys = [name for name, _ in parts if name is not None]
    constants = [(i, value) for i, (name, value) in enumerate(parts) if name is None]
    keyed = [i for i, (name, _) in enumerate(parts) if name is not None]
    processed = tuple(
        (position, processor)
        for position, i in enumerate(keyed)
        if (processor := parts[i][1]) is not None
    )
    if not keys:
        values = tuple(value for _, value in constants)
        return lambda row: values
    if len(keys) == 1:
        key = keys[0]
        get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = lambda row: (row[key],)  # noqa: E731
    else:
        get = cast(Callable[[Mapping[str, Any]], tuple[Any, ...]], itemgetter(*keys))
    if not processed and not constants:
        return get

    def make(row: Mapping[str, Any]) -> tuple[Any, ...]:
        out = list(get(row))
        for i, processor in processed:
            out[i] = processor(out[i])
        for i, value in constants:  # ascending positions: each lands where it belongs
            out.insert(i, value)
        return tuple(out)

    return make


def write_plan(stmt: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> WritePlan:
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=list(keys)))
    order = compiled.positiontup
    if order is None:  # pragma: no cover - both dialects Attain uses are positional
        raise TypeError(f"{dialect.name} has a named paramstyle")
    parts: list[tuple[str | None, Any]] = []
    for name in order:
        bind = compiled.binds[name]
        processor = bind_processor(bind.type, dialect)
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
    copy = copy_target(stmt, dialect, compiled.string, order)
    return WritePlan(compiled.string, row_maker(parts), copy)


def copy_target(
    stmt: ClauseElement, dialect: Dialect, sql: str, order: Sequence[str]
) -> CopyTarget | None:
    """The COPY target when `stmt` is a plain INSERT of one row's values (no RETURNING, no
    ON CONFLICT, no SELECT, no multi-row VALUES): one that compiles to exactly the SQL of
    `insert(table)` over the same columns, which says so without inspecting the statement."""
    if not isinstance(stmt, Insert):
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
    plain = insert(table).compile(dialect=dialect, column_keys=list(order))
    if plain.string != sql:
        return None
    return CopyTarget(table.name, tuple(names))


class ArrayUpdate(NamedTuple):
    """The PostgreSQL statement of an `UpdateRows`, and per array its row key and processor."""

    sql: str
    params: tuple[tuple[str, Processor | None], ...]


def array_update(
    table: Table, match: Sequence[tuple[str, str]], values: Sequence[str], dialect: Dialect
) -> ArrayUpdate:
    """Each parameter is an array of one column's values, typed as the column
    (`$1::VARCHAR(64)[]`), and the rows are `unnest`ed."""
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
        (name, table.c[column].type.dialect_impl(dialect).bind_processor(dialect))
        for column, name in zip(columns, names, strict=True)
    )
    return ArrayUpdate(sql, params)


# ---------------------------------------------------------------- reads


@dataclass(slots=True)
class ReadPlan:
    sql: str
    binds: tuple[tuple[str, Processor | None], ...]
    types: tuple[TypeEngine[Any], ...]
    # Values the statement carries itself (a LIMIT, a literal), for names `params` leaves out.
    literals: dict[str, Any]
    # The named tuple rows come as: given, or made from the column names the driver reports.
    row_type: type | None
    row_name: str
    # A driver row to its named tuple. Result processors depend on the column types the
    # driver reports (PostgreSQL's NUMERIC among others), so it is made at the first run.
    convert: Callable[[Any], Any] | None = None

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.literals:
            params = {**self.literals, **params}
        return tuple(
            [
                params[name] if processor is None else processor(params[name])
                for name, processor in self.binds
            ]
        )

    def describe(self, columns: Sequence[tuple[str, Any]], dialect: Dialect) -> None:
        """Makes `convert` from the driver's (name, type code) per column."""
        types = list(self.types)[: len(columns)]
        types += [NullType()] * (len(columns) - len(types))  # text columns carry no type
        processors = [
            result_processor(type_, dialect, code)
            for type_, (_, code) in zip(types, columns, strict=True)
        ]
        names = [name for name, _ in columns]
        row_type: type = self.row_type or namedtuple(self.row_name, names, rename=True)
        fields = list(getattr(row_type, "_fields", ()))
        if fields != names and self.row_type is not None:
            raise TypeError(f"{row_type.__name__} has fields {fields}, the rows {names}")
        self.convert = row_converter(row_type, processors)


def read_plan(
    stmt: ClauseElement, dialect: Dialect, name: str, row_type: type | None = None
) -> ReadPlan:
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    order = compiled.positiontup or ()
    binds = tuple((bind, bind_processor(compiled.binds[bind].type, dialect)) for bind in order)
    literals = {
        bind: compiled.binds[bind].value for bind in order if compiled.binds[bind].value is not None
    }
    columns = stmt.exported_columns if isinstance(stmt, ReturnsRows) else ()
    row_name = "Row_" + "".join(c if c.isalnum() else "_" for c in name)
    types = tuple(column.type for column in columns)
    return ReadPlan(compiled.string, binds, types, literals, row_type, row_name)


def row_converter(row_type: type, processors: Sequence[Processor | None]) -> Callable[[Any], Any]:
    """One function from a driver row to a named tuple of processed values (None stays
    None)."""
    processed = tuple((i, p) for i, p in enumerate(processors) if p is not None)
    if not processed:
        return lambda raw: row_type(*raw)

    def convert(raw: Any) -> Any:
        values = list(raw)
        for i, processor in processed:
            value = values[i]
            if value is not None:
                values[i] = processor(value)
        return row_type(*values)

    return convert
