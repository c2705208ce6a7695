"""A redelivery is a duplicate by content, whatever fingerprint an older version stored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import update

from attain_server.application.ingest import OutcomeStatus, Recorder
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from attain_server.store.tables import TransactionRow
from support import brand_with_members

NOW = datetime(2026, 11, 20, tzinfo=UTC)


async def test_same_content_is_a_duplicate_whatever_the_stored_fingerprint(
    database_url: str,
) -> None:
    db = Database(database_url)
    await db.migrate()
    brand = f"D{id(db)}"
    await brand_with_members(db, brand, ["M"], NOW)
    recorder = Recorder(db, lambda: NOW)
    sale = Transaction(
        "T1", "M", NOW, "S", TransactionType.SALE, (Line("A", "x", Decimal("1"), Decimal("10.50")),)
    )
    [first] = await recorder.record(brand, [sale])
    assert first.status is OutcomeStatus.ACCEPTED
    async with db.write() as s:  # as if an older version had hashed it differently
        table = TransactionRow.__table__  # type: ignore[attr-defined]
        await s.exec(update(table).where(table.c.brand_code == brand).values(fingerprint="old"))
    same = replace(sale, lines=(Line("A", "x", Decimal("1.0"), Decimal("10.5")),))
    other = replace(sale, store_id="S2")
    again, changed = await recorder.record(brand, [same, other])
    assert again.status is OutcomeStatus.DUPLICATE
    assert changed.status is OutcomeStatus.REFUSED and changed.reason == "TRANSACTION_CONFLICT"
    await db.dispose()
