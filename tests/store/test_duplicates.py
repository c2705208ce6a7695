"""A redelivery is a duplicate by its content: decimals by value, instants by instant."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from attain_server.application.ingest import OutcomeStatus, Recorder
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from support import brand_with_members

NOW = datetime(2026, 11, 20, tzinfo=UTC)
JAKARTA = timezone(timedelta(hours=7))


async def _recorder(database_url: str) -> tuple[Database, str, Recorder]:
    db = Database(database_url)
    await db.migrate()
    brand = f"D{uuid.uuid4().hex[:16]}"
    await brand_with_members(db, brand, ["M"], NOW)
    return db, brand, Recorder(db, lambda: NOW)


def _sale() -> Transaction:
    return Transaction(
        "T1", "M", NOW, "S", TransactionType.SALE, (Line("A", "x", Decimal("1"), Decimal("10.50")),)
    )


def _same_written_otherwise(sale: Transaction) -> Transaction:
    return replace(
        sale,
        occurred_at=sale.occurred_at.astimezone(JAKARTA),
        lines=(Line("A", "x", Decimal("1.0"), Decimal("10.5")),),
    )


async def test_same_content_is_a_duplicate_and_other_content_a_conflict(
    database_url: str,
) -> None:
    db, brand, recorder = await _recorder(database_url)
    sale = _sale()
    [first] = await recorder.record(brand, [sale])
    assert first.status is OutcomeStatus.ACCEPTED
    others = [
        replace(sale, store_id="S2"),
        replace(sale, occurred_at=NOW - timedelta(microseconds=1)),
        replace(sale, lines=(Line("A", "y", Decimal("1"), Decimal("10.50")),)),
        replace(sale, lines=(Line("A", "x", Decimal("1"), Decimal("10.51")),)),
    ]
    outcomes = await recorder.record(brand, [_same_written_otherwise(sale), *others])
    assert [o.status for o in outcomes] == [OutcomeStatus.DUPLICATE] + [
        OutcomeStatus.REFUSED
    ] * len(others)
    assert {o.reason for o in outcomes[1:]} == {"TRANSACTION_CONFLICT"}
    await db.dispose()


async def test_a_redelivery_within_one_batch_is_decided_the_same_way(database_url: str) -> None:
    db, brand, recorder = await _recorder(database_url)
    sale = _sale()
    outcomes = await recorder.record(
        brand, [sale, _same_written_otherwise(sale), replace(sale, store_id="S2")]
    )
    assert [o.status for o in outcomes] == [
        OutcomeStatus.ACCEPTED,
        OutcomeStatus.DUPLICATE,
        OutcomeStatus.REFUSED,
    ]
    assert outcomes[2].reason == "TRANSACTION_CONFLICT"
    await db.dispose()
