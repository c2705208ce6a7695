"""The transaction repository: recorded transactions by id, and the rows a batch writes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select
from sqlalchemy.sql import Select

from attain_server.domain.decimals import decimal_text
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import Transaction, TransactionType

from . import _runner as runner
from .tables import TransactionRow

_TABLE = TransactionRow.__table__  # type: ignore[attr-defined]

# The columns a batch reads back: duplicates, conflicts and returns' originals.
_COLUMNS = (
    "id",
    "member_id",
    "type",
    "occurred_time",
    "store_id",
    "original_id",
    "lines",
    "net_lines",
    "counted_in",
)


class StoredTransaction(NamedTuple):
    """A recorded transaction as its row holds it."""

    id: str
    member_id: str
    type: TransactionType
    occurred_at: datetime
    store_id: str
    original_id: str
    lines: tuple[Line, ...]
    # A sale's lines net of what was returned from it; None while nothing was.
    net_lines: tuple[Line, ...] | None
    # The (target, cycle) pairs a sale was counted in.
    counted_in: tuple[tuple[str, str], ...]


class NewTransaction(NamedTuple):
    """An accepted transaction to insert, with what the batch worked out for a sale."""

    transaction: Transaction
    net_lines: tuple[Line, ...] | None = None
    counted_in: Sequence[tuple[str, str]] | None = None


def _lines_to_json(lines: Iterable[Line]) -> list[list[str]]:
    return [
        [ln.sku, ln.category, decimal_text(ln.quantity), decimal_text(ln.amount)] for ln in lines
    ]


def _lines_from_json(data: Iterable[list[str]]) -> tuple[Line, ...]:
    return tuple(Line(sku, cat, Decimal(q), Decimal(a)) for sku, cat, q, a in data)


def _stored(r: Any) -> StoredTransaction:
    return StoredTransaction(
        id=r.id,
        member_id=r.member_id,
        type=TransactionType(r.type),
        occurred_at=r.occurred_time,
        store_id=r.store_id,
        original_id=r.original_id,
        lines=_lines_from_json(r.lines),
        net_lines=_lines_from_json(r.net_lines) if r.net_lines else None,
        counted_in=tuple((tc, cy) for tc, cy in (r.counted_in or [])),
    )


def _by_id_query(size: int) -> Select[Any]:
    t = _TABLE
    return select(*(t.c[name] for name in _COLUMNS)).where(
        t.c.brand_code == bindparam("brand"), runner.in_list(t.c.id, size)
    )


_BY_ID = runner.QueryIn(_by_id_query)
# PostgreSQL arbitrates between replicas with row locks; SQLite has one writer, no locks.
_BY_ID_LOCKED = runner.QueryIn(
    _by_id_query, postgresql=lambda size: _by_id_query(size).with_for_update()
)


async def load_transactions_by_id(
    s: runner.Conn, *, brand: str, ids: Sequence[str], lock: bool
) -> list[StoredTransaction]:
    """The recorded transactions among `ids`; when `lock`, locked FOR UPDATE where the
    database has row locks (PostgreSQL; SQLite has one writer)."""
    if not ids:
        return []
    rows = await (_BY_ID_LOCKED if lock else _BY_ID).rows(s, {"brand": brand}, ids)
    return [_stored(r) for r in rows]


_INSERT_TRANSACTIONS = runner.Write(lambda: insert(_TABLE))


async def insert_transactions(
    s: runner.Conn, *, brand: str, records: Sequence[NewTransaction], now: datetime
) -> None:
    """Inserts accepted transactions, recorded now."""
    rows = [
        {
            "brand_code": brand,
            "id": t.id,
            "member_id": t.member_id,
            "type": t.type.value,
            "occurred_time": t.occurred_at,
            "store_id": t.store_id,
            "original_id": t.original_id,
            "lines": _lines_to_json(t.lines),
            "net_lines": None if net is None else _lines_to_json(net),
            # (target, cycle) pairs: JSON writes each tuple as a two-item array.
            "counted_in": counted_in,
            "record_time": now,
        }
        for t, net, counted_in in records
    ]
    await _INSERT_TRANSACTIONS.run(s, rows)


_NET_LINES = runner.UpdateRows(
    _TABLE, match=(("brand_code", "b_brand"), ("id", "b_id")), values=("net_lines",)
)


async def update_net_lines(
    s: runner.Conn, *, brand: str, nets: Sequence[tuple[str, tuple[Line, ...]]]
) -> None:
    """Stores new net lines of recorded sales, as (transaction id, net lines) pairs."""
    await _NET_LINES.run(
        s,
        [{"b_brand": brand, "b_id": tid, "net_lines": _lines_to_json(net)} for tid, net in nets],
    )
