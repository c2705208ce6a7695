"""The transaction repository: recorded transactions read back exactly, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from attain_server.domain.kpis import Line
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.transactions import (
    NewTransaction,
    insert_transactions,
    load_transactions_by_id,
    update_net_lines,
)
from support import brand_with_members, migrated

NOW = datetime(2026, 11, 20, tzinfo=UTC)
LINES = (Line("A", "x", Decimal("2"), Decimal("10.50")), Line("B", "", Decimal(1), Decimal(3)))


def _sale(txn_id: str) -> Transaction:
    when = (NOW - timedelta(hours=1)).astimezone(timezone(timedelta(hours=7)))
    return Transaction(txn_id, "M", when, "S", TransactionType.SALE, LINES)


async def test_sales_and_returns_read_back_with_their_net_lines(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"X{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M"], NOW)
        returned = (Line("A", "x", Decimal(1), Decimal("5.25")),)
        refund = Transaction("R1", "M", NOW, "", TransactionType.RETURN, returned, "T1")
        async with db.unit() as s:
            await insert_transactions(
                s,
                brand=brand,
                records=[
                    NewTransaction(_sale("T1"), None, [("T", "2026-11")]),
                    NewTransaction(_sale("T2"), None, []),
                    NewTransaction(refund),
                ],
                now=NOW,
            )
        net = (Line("A", "x", Decimal(1), Decimal("5.25")), LINES[1])
        async with db.unit() as s:
            await update_net_lines(s, brand=brand, nets=[("T2", net)])
        async with db.unit() as s:
            found = await load_transactions_by_id(
                s, brand=brand, ids=["R1", "T1", "T2", "T9"], lock=True
            )
        by_id = {t.id: t for t in found}
        assert set(by_id) == {"R1", "T1", "T2"}
        t1 = by_id["T1"]
        assert (t1.type, t1.occurred_at, t1.lines, t1.net_lines, t1.counted_in) == (
            TransactionType.SALE,
            _sale("T1").occurred_at,
            LINES,
            None,
            (("T", "2026-11"),),
        )
        assert by_id["T2"].net_lines == net
        r1 = by_id["R1"]
        assert (r1.type, r1.original_id, r1.store_id, r1.lines) == (
            TransactionType.RETURN,
            "T1",
            "",
            returned,
        )


async def test_no_ids_reads_nothing(database_url: str) -> None:
    async with migrated(database_url) as db, db.unit() as s:
        assert await load_transactions_by_id(s, brand="nobody", ids=[], lock=False) == []
