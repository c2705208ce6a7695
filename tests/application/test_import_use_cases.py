"""File-import use cases on both databases: begin, batches with checkpoints, finish."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from attain_server.application.imports import (
    ImportJob,
    ImportProblem,
    TargetValueLine,
    begin_import,
    finish_import,
    import_problems,
    record_target_values_batch,
    record_transactions_batch,
    record_unreadable_file,
)
from attain_server.application.ingest import Outcome, Recorder
from attain_server.domain.kpis import Line
from attain_server.domain.model import TargetValue
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from support import amount_target, brand_with_members, migrated, stored_target

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _sale(tid: str, amount: str = "10") -> Transaction:
    line = Line("SKU", "food", Decimal(1), Decimal(amount))
    return Transaction(tid, "M", NOW, "S", TransactionType.SALE, (line,))


async def _brand(db: Database) -> str:
    brand = f"I{uuid.uuid4().hex[:16]}"
    await brand_with_members(db, brand, ["M"], NOW)
    return brand


async def _job(db: Database, brand: str, name: str = "a.csv") -> ImportJob:
    job, finished = await begin_import(
        db=db, brand=brand, kind="TRANSACTIONS", file_name=name, sha256="ab" * 32, now=NOW
    )
    assert not finished
    return job


async def test_a_file_is_begun_once_and_resumed_until_finished(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        job = await _job(db, brand)
        assert (job.record.state, job.record.committed_line) == ("RUNNING", 0)
        again, finished = await begin_import(
            db=db, brand=brand, kind="TRANSACTIONS", file_name="a.csv", sha256="ab" * 32, now=NOW
        )
        assert (again.id, finished) == (job.id, False)
        done = await finish_import(db=db, job=job, now=NOW, state="FAILED", reason="bad header")
        assert (done.state, done.failure_reason, done.finish_time) == ("FAILED", "bad header", NOW)
        _, finished = await begin_import(
            db=db, brand=brand, kind="TRANSACTIONS", file_name="a.csv", sha256="ab" * 32, now=NOW
        )
        assert finished


async def test_a_transaction_batch_commits_with_its_checkpoint(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        recorder = Recorder(db, lambda: NOW)
        job = await _job(db, brand)
        refused_in_file = [ImportProblem(3, "amount", "x", "is not a number")]
        explained: list[tuple[int, Outcome]] = []

        def explain(index: int, outcome: Outcome) -> ImportProblem:
            explained.append((index, outcome))
            return ImportProblem(
                5, "transaction_id", "T1", outcome.error.message if outcome.error else ""
            )

        counts = await record_transactions_batch(
            recorder=recorder,
            job=job,
            transactions=[_sale("T1"), _sale("T2")],
            upto=4,
            read=3,
            refused=refused_in_file,
            refused_count=1,
            explain_refusal=explain,
        )
        assert (counts.read, counts.accepted, counts.duplicate, counts.refused) == (3, 2, 0, 1)
        # The same id again with other content is refused, a repeat is a duplicate.
        counts = await record_transactions_batch(
            recorder=recorder,
            job=job,
            transactions=[_sale("T2"), _sale("T1", "11")],
            upto=6,
            read=2,
            refused=[],
            refused_count=0,
            explain_refusal=explain,
        )
        assert (counts.accepted, counts.duplicate, counts.refused) == (0, 1, 1)
        assert [index for index, _ in explained] == [1]
        assert (job.counts.read, job.counts.accepted, job.counts.refused) == (5, 2, 2)
        problems = await import_problems(db=db, job=job)
        assert [(p.line, p.column) for p in problems] == [(3, "amount"), (5, "transaction_id")]
        resumed, _ = await begin_import(
            db=db, brand=brand, kind="TRANSACTIONS", file_name="a.csv", sha256="ab" * 32, now=NOW
        )
        assert (resumed.record.committed_line, resumed.counts.accepted) == (6, 2)


async def test_a_target_batch_keeps_good_lines_and_explains_the_others(
    database_url: str,
) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        await stored_target(db, brand, amount_target("T", date(2026, 1, 1)))
        job = await _job(db, brand, "targets.csv")

        def explain(line: int, field: str, reason: str) -> ImportProblem:
            return ImportProblem(line, f"col:{field}", "", reason)

        counts = await record_target_values_batch(
            db=db,
            job=job,
            lines=[
                TargetValueLine(2, TargetValue("M", "T", "2026-11", "", Decimal(50))),
                TargetValueLine(3, TargetValue("NOBODY", "T", "2026-11", "", Decimal(5))),
                TargetValueLine(4, None, [ImportProblem(4, "target_value", "?", "not a number")]),
            ],
            now=NOW,
            explain=explain,
        )
        assert (counts.read, counts.accepted, counts.refused) == (3, 1, 2)
        problems = await import_problems(db=db, job=job)
        assert [(p.line, p.column) for p in problems] == [
            (3, "col:member_id"),
            (4, "target_value"),
        ]
        resumed, _ = await begin_import(
            db=db,
            brand=brand,
            kind="TRANSACTIONS",
            file_name="targets.csv",
            sha256="ab" * 32,
            now=NOW,
        )
        assert resumed.record.committed_line == 4


async def test_an_unreadable_file_has_one_failed_record(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        first = await record_unreadable_file(
            db=db, brand=brand, kind="TRANSACTIONS", file_name="x.csv", reason="gone", now=NOW
        )
        later = datetime(2026, 11, 21, tzinfo=UTC)
        again = await record_unreadable_file(
            db=db, brand=brand, kind="TRANSACTIONS", file_name="x.csv", reason="still", now=later
        )
        assert again.id == first.id
        assert (again.state, again.failure_reason, again.start_time) == ("FAILED", "still", later)
