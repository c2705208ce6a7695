"""Points balances read from the ledger in a way that cannot overflow, on either database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .tables import LedgerEntryRow

_LOW_BITS = 32
_LOW_MASK = (1 << _LOW_BITS) - 1


async def balances(
    s: AsyncSession, brand: str, member_id: str, program: str = ""
) -> dict[str, int]:
    """The member's balance per program (or in the one named), exactly.

    PostgreSQL sums BIGINTs into a NUMERIC, which never overflows. SQLite's SUM of integers
    fails with "integer overflow" as soon as a running total passes 2^63, whatever the final
    sum: it sums each entry's high and low 32 bits apart here, which no run of fewer than
    2^31 entries can overflow, and Python puts the halves together."""
    points = col(LedgerEntryRow.points)
    sums: tuple[Any, ...]
    if s.get_bind().dialect.name == "sqlite":
        sums = (func.sum(points.op(">>")(_LOW_BITS)), func.sum(points.op("&")(_LOW_MASK)))
    else:
        sums = (func.sum(points),)
    q = (
        select(LedgerEntryRow.program, *sums)
        .where(LedgerEntryRow.brand_code == brand, LedgerEntryRow.member_id == member_id)
        .group_by(col(LedgerEntryRow.program))
    )
    if program:
        q = q.where(LedgerEntryRow.program == program)
    out: dict[str, int] = {}
    for code, *parts in (await s.exec(q)).all():
        if len(parts) == 2:
            out[code] = (int(parts[0] or 0) << _LOW_BITS) + int(parts[1] or 0)
        else:
            out[code] = int(parts[0] or 0)
    return out
