"""Keyset paging for repositories: one page of a query in (time, id) order, resumed after a key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

Row = TypeVar("Row")


async def by_time_then_id(
    s: AsyncSession,
    q: SelectOfScalar[Row],
    *,
    size: int,
    after: tuple[datetime, str] | None,
    time_column: Any,
    id_column: Any,
    newest_first: bool = False,
) -> tuple[list[Row], tuple[datetime, str] | None]:
    """Up to ``size`` rows of ``q`` in (time, id) order (columns, e.g.
    `col(Row.create_time)`) after the key ``after``; with them the key to resume after, or
    None when these were the last."""
    if after is not None:
        when, ident = after
        if newest_first:
            q = q.where((time_column < when) | ((time_column == when) & (id_column < ident)))
        else:
            q = q.where((time_column > when) | ((time_column == when) & (id_column > ident)))
    order = (time_column.desc(), id_column.desc()) if newest_first else (time_column, id_column)
    rows = list((await s.execute(q.order_by(*order).limit(size + 1))).scalars().all())
    items = rows[:size]
    if len(rows) <= size:
        return items, None
    last = items[-1]
    return items, (getattr(last, time_column.key), getattr(last, id_column.key))
