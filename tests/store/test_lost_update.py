"""A progress row written by someone else since a batch read it rolls the batch back."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import select

from attain_server.application import ingest
from attain_server.application.ingest import OutcomeStatus, Recorder
from attain_server.application.targets import create_target
from attain_server.domain.errors import Aborted
from attain_server.domain.kpis import Line
from attain_server.domain.progress import ProgressKey, ProgressState
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from attain_server.store.progress import load_progress_states
from attain_server.store.tables import ProgressRow, TransactionRow
from support import amount_target, brand_with_members

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _sale(txn_id: str, amount: str) -> Transaction:
    return Transaction(
        txn_id,
        "M",
        NOW - timedelta(hours=1),
        "S",
        TransactionType.SALE,
        (Line("A", "x", Decimal(1), Decimal(amount)),),
    )


async def test_a_row_changed_since_the_batch_read_it_rolls_the_batch_back(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(database_url)
    await db.migrate()
    brand = f"L{uuid.uuid4().hex[:16]}"
    await brand_with_members(db, brand, ["M"], NOW)
    await create_target(
        db=db, brand=brand, now=NOW, definition=amount_target("T", date(2026, 11, 1))
    )
    recorder = Recorder(db, lambda: NOW)
    [first] = await recorder.record(brand, [_sale("T1", "10")])
    assert first.status is OutcomeStatus.ACCEPTED

    # As if another writer had committed a new version of the row after this batch read it.
    async def stale(*args: Any, **kwargs: Any) -> dict[ProgressKey, ProgressState]:
        found = await load_progress_states(*args, **kwargs)
        for state in found.values():
            state.version -= 1
        return found

    # The recorder reads the rows through its own module's name for the repository function.
    monkeypatch.setattr(ingest, "load_progress_states", stale)
    with pytest.raises(Aborted):
        await recorder.record(brand, [_sale("T2", "5")])
    monkeypatch.undo()

    async with db.read() as s:
        row = (await s.exec(select(ProgressRow).where(ProgressRow.brand_code == brand))).one()
        stored = (
            await s.exec(select(TransactionRow.id).where(TransactionRow.brand_code == brand))
        ).all()
    assert (row.version, row.tallies["c1"]["total"], stored) == (1, "10", ["T1"])
    [again] = await recorder.record(brand, [_sale("T2", "5")])  # nothing of it stayed
    assert again.status is OutcomeStatus.ACCEPTED
    await db.dispose()
