"""executemany (and hot point reads) without SQLAlchemy's per-statement machinery.

A batch of 1,000 transactions writes thousands of rows (transactions, progress, awards,
ledger entries, stream events). SQLAlchemy's executemany builds every row's parameters
through its generic compiler path (`construct_params`), which profiles showed to be about a
quarter of an ingest batch. Here a statement is compiled once per shape and dialect, and
each row becomes a tuple through the same bind processors the column types define (UTC
datetimes, exact decimals, JSON), in one tight loop; the driver's executemany runs it. The
values reaching the database are the ones SQLAlchemy would send, and driver errors still
arrive as SQLAlchemy's exceptions (IntegrityError and the rest).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel.ext.asyncio.session import AsyncSession

# A plan: the SQL, and per positional parameter a function from a row (dict) to its value.
_Plan = tuple[str, tuple[Callable[[dict[str, Any]], Any], ...]]
_PLANS: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}


def _step(name: str, processor: Callable[[Any], Any] | None) -> Callable[[dict[str, Any]], Any]:
    if processor is None:
        return itemgetter(name)
    return lambda row: processor(row[name])


def _constant(value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda _row: value


def _plan(stmt: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=list(keys)))
    order = compiled.positiontup
    if order is None:  # pragma: no cover - both dialects Attain uses are positional
        raise TypeError(f"{dialect.name} has a named paramstyle")
    steps = []
    for name in order:
        bind = compiled.binds[name]
        processor = bind.type._cached_bind_processor(dialect)
        if name in keys:
            steps.append(_step(name, processor))
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
        steps.append(_constant(value if processor is None else processor(value)))
    return compiled.string, tuple(steps)


async def executemany(
    s: AsyncSession, key: str, build: Callable[[], ClauseElement], rows: Sequence[dict[str, Any]]
) -> int:
    """Runs the statement `build()` once per row of `rows` (dicts with the same keys);
    returns the driver's row count (-1 where it does not tell). `key` names the statement
    shape for the plan cache."""
    if not rows:
        return 0
    conn = await s.connection()
    keys = tuple(rows[0])
    cache_key = (key, conn.dialect.name, keys)
    plan = _PLANS.get(cache_key)
    if plan is None:
        plan = _PLANS[cache_key] = _plan(build(), conn.dialect, keys)
    sql, steps = plan
    result = await conn.exec_driver_sql(sql, [tuple(step(row) for step in steps) for row in rows])
    return int(result.rowcount)


@dataclass
class _ReadPlan:
    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    types: tuple[Any, ...]
    row_type: type
    # Result processors depend on the column types the driver reports (PostgreSQL's
    # NUMERIC among others), so they are made at the first execution.
    processors: tuple[Callable[[Any], Any] | None, ...] | None = None


_READS: dict[tuple[str, str], _ReadPlan] = {}


def _read_plan(stmt: ClauseElement, dialect: Dialect, key: str) -> _ReadPlan:
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    order = compiled.positiontup or ()
    binds = tuple(
        (name, compiled.binds[name].type._cached_bind_processor(dialect)) for name in order
    )
    entries = compiled._result_columns  # (keyname, name, objects, type) per selected column
    row_type = namedtuple(  # type: ignore[misc]
        f"Row_{key.replace('.', '_')}", [entry[0] for entry in entries], rename=True
    )
    return _ReadPlan(compiled.string, binds, tuple(entry[3] for entry in entries), row_type)


async def fetch(
    s: AsyncSession, key: str, build: Callable[[], ClauseElement], params: dict[str, Any]
) -> list[Any]:
    """Rows of a hot read, as named tuples with processed values (JSON decoded, instants
    aware, decimals exact): the statement is compiled once per `key` and dialect, then run
    through the driver directly. `build()` must use bindparam()s named like `params`."""
    conn = await s.connection()
    dialect = conn.dialect
    plan = _READS.get((key, dialect.name))
    if plan is None:
        plan = _READS[(key, dialect.name)] = _read_plan(build(), dialect, key)
    args = tuple(
        params[name] if processor is None else processor(params[name])
        for name, processor in plan.binds
    )
    result = await conn.exec_driver_sql(plan.sql, args)
    processors = plan.processors
    if processors is None:
        description = result.cursor.description if result.cursor is not None else None
        codes = [d[1] for d in description] if description else [None] * len(plan.types)
        processors = plan.processors = tuple(
            t._cached_result_processor(dialect, code)
            for t, code in zip(plan.types, codes, strict=True)
        )
    return [
        plan.row_type(
            *(v if p is None or v is None else p(v) for p, v in zip(processors, raw, strict=True))
        )
        for raw in result.fetchall()
    ]
