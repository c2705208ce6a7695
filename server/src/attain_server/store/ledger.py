"""The points ledger: entries written once, read by page, and balances that cannot overflow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.awards import LedgerEntry

from . import _runner as runner
from . import pages
from .tables import LedgerEntryRow

_LOW_BITS = 32
_LOW_MASK = (1 << _LOW_BITS) - 1
_LEDGER = LedgerEntryRow.__table__  # type: ignore[attr-defined]
_COLUMNS = tuple(f.name for f in fields(LedgerEntry))


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(*(getattr(row, name) for name in _COLUMNS))


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
    for code, *parts in (await s.execute(q)).all():
        if len(parts) == 2:
            out[code] = (int(parts[0] or 0) << _LOW_BITS) + int(parts[1] or 0)
        else:
            out[code] = int(parts[0] or 0)
    return out


_INSERT_ENTRIES = runner.Write(lambda: insert(_LEDGER))


async def insert_ledger_entries(s: runner.Conn, entries: Sequence[LedgerEntry]) -> None:
    """Appends entries in one statement (those of awards given or reversed in bulk)."""
    rows = [{name: getattr(e, name) for name in _COLUMNS} for e in entries]
    await _INSERT_ENTRIES.run(s, rows)


async def add_ledger_entry(s: AsyncSession, entry: LedgerEntry) -> None:
    """Appends one entry now: a used request id fails here as a conflict."""
    s.add(LedgerEntryRow(**asdict(entry)))
    await s.flush()


async def find_ledger_entry_by_request(
    s: AsyncSession, *, brand: str, request_id: str
) -> LedgerEntry | None:
    """The entry an earlier adjustment with this request id wrote, if any."""
    q = select(LedgerEntryRow).where(
        LedgerEntryRow.brand_code == brand, LedgerEntryRow.request_id == request_id
    )
    row = (await s.execute(q)).scalars().first()
    return None if row is None else _entry(row)


class LedgerPage(NamedTuple):
    entries: list[LedgerEntry]
    resume: tuple[datetime, str] | None  # None: these were the last


async def list_ledger_page(
    s: AsyncSession,
    *,
    brand: str,
    member_id: str,
    program: str,
    size: int,
    after: tuple[datetime, str] | None,
) -> LedgerPage:
    """A member's entries, newest first, in one program or all."""
    q = select(LedgerEntryRow).where(
        LedgerEntryRow.brand_code == brand, LedgerEntryRow.member_id == member_id
    )
    if program:
        q = q.where(LedgerEntryRow.program == program)
    items, resume = await pages.by_time_then_id(
        s,
        q,
        size=size,
        after=after,
        time_column=col(LedgerEntryRow.create_time),
        id_column=col(LedgerEntryRow.id),
        newest_first=True,
    )
    return LedgerPage([_entry(r) for r in items], resume)
