"""Hot statements on the driver, without SQLAlchemy's per-statement machinery.

An ingest batch or a progress read runs a handful of statements of fixed shapes, and
SQLAlchemy's generic path (cache keys, compilation lookup, parameter building, the greenlet
bridge, result wrapping) costs more than the SQL itself. Here a statement is compiled once
per shape and dialect (`plans`); each row becomes a tuple through the bind processors the
column types define (UTC datetimes, exact decimals, JSON); results come back as named tuples
through the types' result processors. The values reaching the database are the ones
SQLAlchemy would send, and driver errors arrive as SQLAlchemy's exceptions (IntegrityError
and the rest).

On SQLite the statements go straight to the `sqlite3` connection of the unit of work
(`sqlite`, decision 0009); on PostgreSQL straight to the asyncpg connection, inside the
transaction SQLAlchemy's adapter keeps for it (`asyncpg`). Either way they run inside the
unit of work's transaction (`units`), and an ORM session of the same unit sees them. On
PostgreSQL a plain INSERT of several rows is a binary COPY, and `UpdateRows` one UPDATE
joined to the rows as arrays (decision 0011). The few private attributes of SQLAlchemy this
needs are reached in `library` only (decision 0028).

Repositories declare their statements once, at module level, and run them by name; the
plans are cached per object and dialect, so no cache key or dialect check is written by
hand::

    MEMBERS = QueryIn(
        lambda size: select(MemberRow.id, MemberRow.tier).where(
            MemberRow.brand_code == bindparam("brand"), in_list(col(MemberRow.id), size)
        ),
        row=MemberTier,  # a NamedTuple with fields (id, tier); optional
    )
    rows = await MEMBERS.rows(s, {"brand": brand}, member_ids)  # list[MemberTier]

    LATEST = Query(lambda: select(...), postgresql=lambda: select(...).with_for_update())
    ADD_EVENTS = Write(lambda: insert(EventRow.__table__))
    await ADD_EVENTS.run(s, rows)

`Query(build).rows(s, params)` reads; `QueryIn(build).rows(s, params, values)` reads over
an IN list of any length (bound as `in_list(column, size)`, the size rounded up to a power
of two); `Write(build).run(s, rows)` runs a statement per row;
`UpdateRows(table, match=..., values=...).run(s, rows)` updates one table row per row and
counts the rows changed.
"""

from .base import Runner
from .queries import Query, QueryIn, UpdateRows, Write
from .statements import IN_CHUNK, in_list
from .units import Conn, Unit, driver_closed, engine_of, orm, runner_for

__all__ = [
    "IN_CHUNK",
    "Conn",
    "Query",
    "QueryIn",
    "Runner",
    "Unit",
    "UpdateRows",
    "Write",
    "driver_closed",
    "engine_of",
    "in_list",
    "orm",
    "runner_for",
]
