"""How a declared statement runs: its plan looked up or made, then sent through the driver.

The plans live on the declaring objects (queries.py), keyed here by shape and dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.sql import ClauseElement, ColumnElement

from .asyncpg import AsyncpgRunner
from .base import Runner
from .plans import ArrayUpdate, ReadPlan, WritePlan, array_update, read_plan, write_plan

# Largest IN list one statement binds; longer lists are split.
IN_CHUNK = 512


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


def in_list(column: ColumnElement[Any], size: int, name: str = "v") -> ColumnElement[bool]:
    """`column IN (:v_0, ..., :v_<size-1>)`, for a `QueryIn`'s `build(size)`."""
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


async def update_with(
    runner: Runner,
    plans: dict[Any, WritePlan],
    arrays: dict[str, ArrayUpdate],
    table: Table,
    match: Sequence[tuple[str, str]],
    values: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """`UpdateRows.run`: an executemany of the one-row UPDATE on SQLite; on PostgreSQL one
    UPDATE joined to the rows as arrays (`unnest`), its plan cached in `arrays`."""
    if not isinstance(runner, AsyncpgRunner):
        return await write_with(
            runner,
            plans,
            "update",
            lambda: (
                update(table)
                .where(*(table.c[column] == bindparam(name) for column, name in match))
                .values({column: bindparam(column) for column in values})
            ),
            rows,
        )
    plan = arrays.get(runner.dialect.name)
    if plan is None:
        plan = arrays[runner.dialect.name] = array_update(table, match, values, runner.dialect)
    columns = [
        [row[name] for row in rows] if processor is None else [processor(row[name]) for row in rows]
        for name, processor in plan.params
    ]
    return await runner.update_arrays(plan.sql, columns)
