"""The standings reads of store/progress.py, on both databases: rows, chunks, the ranking."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from attain_server.application.ingest import Recorder
from attain_server.application.targets import create_target
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store import progress as repo
from support import amount_target, brand_with_members, migrated

NOW = datetime(2026, 11, 20, tzinfo=UTC)
CYCLE = "2026-11"


def _sale(txn_id: str, member: str, amount: str) -> Transaction:
    line = Line("A", "x", Decimal(1), Decimal(amount))
    return Transaction(txn_id, member, NOW, "S", TransactionType.SALE, (line,))


async def test_rows_chunks_and_ranking(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"P{uuid.uuid4().hex[:16]}"
        members = ["M1", "M2", "M3", "M4"]
        await brand_with_members(db, brand, members, NOW)
        target = amount_target("T", NOW.date().replace(day=1), Decimal(100))
        await create_target(db=db, brand=brand, now=NOW, definition=target)
        recorder = Recorder(db, lambda: NOW)
        # M2 and M3 tie at 50%, M1 leads with 80%, M4 has 10%.
        amounts = {"M1": "80", "M2": "50", "M3": "50", "M4": "10"}
        await recorder.record(brand, [_sale(f"S{m}", m, a) for m, a in amounts.items()])
        async with db.reader() as s:
            row = await repo.progress_view_row(
                s, brand=brand, target_code="T", cycle=CYCLE, member_id="M1"
            )
            absent = await repo.progress_view_row(
                s, brand=brand, target_code="T", cycle=CYCLE, member_id="nobody"
            )
            joined = await repo.progress_view_with_awards(
                s, brand=brand, target_code="T", cycle=CYCLE, member_id="M2"
            )
            unopened = await repo.progress_view_with_awards(
                s, brand=brand, target_code="T", cycle=CYCLE, member_id="nobody"
            )
            no_target = await repo.progress_view_with_awards(
                s, brand=brand, target_code="X", cycle=CYCLE, member_id="M1"
            )
            chunk = await repo.list_progress_chunk(
                s, brand=brand, target_code="T", cycle=CYCLE, after="M1", limit=2
            )
        assert row is not None and row.attainment == Decimal(80) and row.rank_key == 80_000_000
        assert absent is None
        assert joined is not None and joined.row is not None and joined.row.member_id == "M2"
        assert joined.awards == []
        assert unopened is not None and unopened.row is None
        assert no_target is None
        assert [r.member_id for r in chunk] == ["M2", "M3"]
        async with db.read() as s:
            top = await repo.list_ranked_progress(
                s, brand=brand, target_code="T", cycle=CYCLE, after=None, limit=2
            )
            last = top.rows[-1]
            rest = await repo.list_ranked_progress(
                s,
                brand=brand,
                target_code="T",
                cycle=CYCLE,
                after=(last.rank_key, last.member_id),
                limit=3,
            )
        assert top.total == 4
        assert [r.member_id for r in top.rows] == ["M1", "M2"]
        assert (top.above, top.tied_before) == (0, 0)
        assert [r.member_id for r in rest.rows] == ["M3", "M4"]
        assert (rest.above, rest.tied_before) == (1, 1)  # M1 above; M2 of its tie group shown
