"""Hot statements named by hand-written keys: writes of many rows, reads, reads over IN lists.

The plans of these functions are cached under the caller's key and the dialect; `Query` and
`Write` (queries.py) keep theirs on the object instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.sql import ClauseElement, ColumnElement

from .asyncpg import AsyncpgRunner
from .base import Runner
from .plans import ArrayUpdate, ReadPlan, WritePlan, array_update, read_plan, write_plan
from .units import Conn, runner_of

# Largest IN list one statement binds; longer lists are split.
IN_CHUNK = 512

_PLANS: dict[tuple[str, str, tuple[str, ...]], WritePlan] = {}
_READS: dict[tuple[str, str], ReadPlan] = {}
_ARRAY_UPDATES: dict[str, ArrayUpdate] = {}


async def write_with(
    runner: Runner,
    plans: dict[Any, WritePlan],
    key: Any,
    build: Callable[[], ClauseElement],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """Runs `build()` once per row, its plan cached in `plans` under `key` and the shape."""
    keys = tuple(rows[0])
    cache_key = (key, runner.dialect.name, keys)
    plan = plans.get(cache_key)
    if plan is None:
        plan = plans[cache_key] = write_plan(build(), runner.dialect, keys)
    return await runner.many(plan.sql, list(map(plan.make, rows)), plan.copy)


async def read_with(
    runner: Runner,
    plans: dict[Any, ReadPlan],
    key: Any,
    build: Callable[[], ClauseElement],
    params: Mapping[str, Any],
    row_type: type | None = None,
) -> list[Any]:
    """The rows of `build()`, its plan cached in `plans` under `key` and the dialect."""
    dialect = runner.dialect
    plan = plans.get((key, dialect.name))
    if plan is None:
        plan = plans[(key, dialect.name)] = read_plan(build(), dialect, str(key), row_type)
    raw_rows, description = await runner.rows(plan.sql, plan.args(params), plan.convert is None)
    if plan.convert is None:
        plan.describe(description or (), dialect)
    assert plan.convert is not None
    return list(map(plan.convert, raw_rows))


async def executemany(
    s: Conn, key: str, build: Callable[[], ClauseElement], rows: Sequence[dict[str, Any]]
) -> int:
    """Runs the statement `build()` once per row of `rows` (dicts with the same keys);
    returns the driver's row count (-1 where it does not tell: asyncpg's executemany).
    `key` names the statement shape for the plan cache. On PostgreSQL, a plain INSERT of
    several rows is a binary COPY of the same values."""
    if not rows:
        return 0
    return await write_with(await runner_of(s), _PLANS, key, build, rows)


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
    runner = await runner_of(s)
    if not isinstance(runner, AsyncpgRunner):
        return await write_with(
            runner,
            _PLANS,
            key,
            lambda: (
                update(table)
                .where(*(table.c[column] == bindparam(name) for column, name in match))
                .values({column: bindparam(column) for column in values})
            ),
            rows,
        )
    plan = _ARRAY_UPDATES.get(key)
    if plan is None:
        plan = _ARRAY_UPDATES[key] = array_update(table, match, values, runner.dialect)
    arrays = [
        [row[name] for row in rows] if processor is None else [processor(row[name]) for row in rows]
        for name, processor in plan.params
    ]
    return await runner.update_arrays(plan.sql, arrays)


async def fetch(
    s: Conn, key: str, build: Callable[[], ClauseElement], params: dict[str, Any]
) -> list[Any]:
    """Rows of a hot read, as named tuples with processed values (JSON decoded, instants
    aware, decimals exact): the statement is compiled once per `key` and dialect, then run
    through the driver directly. `build()` must use bindparam()s named like `params`."""
    return await read_with(await runner_of(s), _READS, key, build, params)


def in_list(column: ColumnElement[Any], size: int, name: str = "v") -> ColumnElement[bool]:
    """`column IN (:v_0, ..., :v_<size-1>)`, for `fetch_in`'s `build(size)`."""
    return column.in_([bindparam(f"{name}_{i}") for i in range(size)])


def _size(count: int) -> int:
    size = 1
    while size < count:
        size *= 2
    return size


def in_chunks(
    params: Mapping[str, Any], values: Iterable[Any], name: str
) -> Iterable[tuple[int, dict[str, Any]]]:
    """Per chunk of at most IN_CHUNK values: its list size (a power of two, the last value
    repeated, so a handful of compiled shapes serve every length) and its parameters."""
    items = list(values)
    for start in range(0, len(items), IN_CHUNK):
        chunk = items[start : start + IN_CHUNK]
        size = _size(len(chunk))
        bound = dict(params)
        for i in range(size):
            bound[f"{name}_{i}"] = chunk[i] if i < len(chunk) else chunk[-1]
        yield size, bound


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
    runner = await runner_of(s)
    out: list[Any] = []
    for size, bound in in_chunks(params, values, name):
        out += await read_with(runner, _READS, f"{key}#{size}", partial(build, size), bound)
    return out
