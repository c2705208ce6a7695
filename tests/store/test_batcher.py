"""Group commit of single transactions: shared batches, one outcome each, and a failed batch
recorded again one by one so that each caller hears only its own failure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from attain_server.application.batcher import Batcher
from attain_server.application.ingest import Outcome, OutcomeStatus, Recorder
from attain_server.domain.errors import FailedPrecondition
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from support import brand_with_members

NOW = datetime(2026, 11, 20, tzinfo=UTC)


class CountingRecorder(Recorder):
    """The real recorder, keeping the size of every batch it was given."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        super().__init__(db, clock)
        self.batches: list[int] = []

    async def record(
        self, brand: str, txns: Sequence[Transaction], *args: Any, **kwargs: Any
    ) -> list[Outcome]:
        self.batches.append(len(txns))
        return await super().record(brand, txns, *args, **kwargs)


def _sale(txn_id: str, member: str = "M1", amount: str = "10.00") -> Transaction:
    line = Line("A", "x", Decimal(1), Decimal(amount))
    return Transaction(txn_id, member, NOW, "S", TransactionType.SALE, (line,))


async def _setup(database_url: str) -> tuple[Database, str, CountingRecorder]:
    db = Database(database_url)
    await db.migrate()
    brand = f"G{uuid.uuid4().hex[:16]}"
    await brand_with_members(db, brand, ["M1", "M2"], NOW)
    return db, brand, CountingRecorder(db, lambda: NOW)


async def test_concurrent_calls_share_batches_and_each_hears_its_own_outcome(
    database_url: str,
) -> None:
    db, brand, recorder = await _setup(database_url)
    batcher = Batcher(recorder)
    calls = [_sale(f"T{i}", "M1" if i % 2 else "M2") for i in range(40)]
    # The same id twice with the same content, and once more with other content.
    calls += [_sale("T0", "M2"), _sale("T1", "M1", amount="99.00")]
    outcomes = await asyncio.gather(*(batcher.record(brand, t) for t in calls))
    assert [o.transaction_id for o in outcomes] == [t.id for t in calls]
    assert [o.status for o in outcomes[:40]] == [OutcomeStatus.ACCEPTED] * 40
    assert outcomes[40].status is OutcomeStatus.DUPLICATE
    assert outcomes[41].status is OutcomeStatus.REFUSED
    assert outcomes[41].reason == "TRANSACTION_CONFLICT"
    assert sum(recorder.batches) == len(calls)
    assert len(recorder.batches) < len(calls)  # calls that arrived together shared a commit
    await db.dispose()


async def test_a_batch_never_exceeds_its_size(database_url: str) -> None:
    db, brand, recorder = await _setup(database_url)
    batcher = Batcher(recorder, max_batch=4)
    outcomes = await asyncio.gather(*(batcher.record(brand, _sale(f"S{i}")) for i in range(10)))
    assert all(o.status is OutcomeStatus.ACCEPTED for o in outcomes)
    assert sum(recorder.batches) == 10 and max(recorder.batches) <= 4
    await db.dispose()


async def test_a_failed_batch_fails_every_caller_in_it(database_url: str) -> None:
    db, _, recorder = await _setup(database_url)
    batcher = Batcher(recorder)
    results = await asyncio.gather(
        *(batcher.record("NO-SUCH-BRAND", _sale(f"F{i}")) for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, FailedPrecondition) for r in results), results
    await db.dispose()


async def test_a_caller_that_gives_up_still_has_its_transaction_written(
    database_url: str,
) -> None:
    db, brand, recorder = await _setup(database_url)
    batcher = Batcher(recorder)
    caller = asyncio.create_task(batcher.record(brand, _sale("GONE")))
    await asyncio.sleep(0)  # queued, and its batch started
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(100):  # the drain goes on without the caller
        if recorder.batches:
            break
        await asyncio.sleep(0.01)
    again = await batcher.record(brand, _sale("GONE"))
    assert again.status is OutcomeStatus.DUPLICATE
    await db.dispose()


class PoisonedRecorder(CountingRecorder):
    """The real recorder, but any unit of work holding the transaction POISON fails."""

    async def record(
        self, brand: str, txns: Sequence[Transaction], *args: Any, **kwargs: Any
    ) -> list[Outcome]:
        if any(t.id == "POISON" for t in txns):
            self.batches.append(len(txns))
            raise RuntimeError("the store failed")
        return await super().record(brand, txns, *args, **kwargs)


async def test_a_failed_batch_is_recorded_one_by_one_and_fails_only_its_culprit(
    database_url: str,
) -> None:
    db, brand, _ = await _setup(database_url)
    recorder = PoisonedRecorder(db, lambda: NOW)
    batcher = Batcher(recorder)
    calls = [_sale(f"N{i}") for i in range(20)]
    calls[7] = _sale("POISON")
    results = await asyncio.gather(
        *(batcher.record(brand, t) for t in calls), return_exceptions=True
    )
    assert recorder.batches[0] == 20  # they shared a batch, and it failed
    assert isinstance(results[7], RuntimeError)
    others = [r for i, r in enumerate(results) if i != 7]
    assert all(isinstance(r, Outcome) and r.status is OutcomeStatus.ACCEPTED for r in others)
    # Each was then a unit of its own.
    assert recorder.batches[1:] == [1] * 20
    await db.dispose()
