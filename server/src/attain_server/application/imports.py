"""File imports (SPEC section 6): begin, batches committed with their checkpoint, finish.

The checkpoint (the last line committed), the counts and the refused rows advance in the
same database transaction as the rows they describe, so a run killed at any point resumes
exactly after the last batch it committed. The front end that reads the file (the worker)
says which line and column each problem belongs to; nothing here knows a file's columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.errors import FailedPrecondition
from attain_server.domain.model import TargetValue
from attain_server.domain.transactions import Transaction
from attain_server.store import brands
from attain_server.store import imports as store
from attain_server.store.engine import Database
from attain_server.store.errors import connection_lost
from attain_server.store.imports import FileImport, ImportErrorRecord

from .awards import new_id
from .ingest import Outcome, OutcomeStatus, Recorder
from .retry import retry_on_conflict
from .target_values import TargetValueCheck, upsert_target_values

__all__ = [
    "Counts",
    "FileImport",
    "ImportJob",
    "ImportProblem",
    "TargetValueLine",
    "begin_import",
    "database_lost",
    "finish_import",
    "import_problems",
    "record_target_values_batch",
    "record_transactions_batch",
    "record_unreadable_file",
    "transaction_file_zone",
]

# A refused row of a file: line, column (as the file names it), value and reason as shown.
ImportProblem = ImportErrorRecord

# Attempts of a target batch that raced a concurrent SetTargetValues on a new key.
TARGET_BATCH_ATTEMPTS = 3


@dataclass(slots=True)
class Counts:
    """Rows of a file by what became of them (a refused transaction counts once)."""

    read: int = 0
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0

    def add(self, other: Counts) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.refused += other.refused


@dataclass(slots=True)
class ImportJob:
    """One file being imported: its record and the running counters."""

    brand: str
    record: FileImport
    counts: Counts = field(default_factory=Counts)
    started: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.record.id


@dataclass(frozen=True, slots=True)
class TargetValueLine:
    """One line of a target file: the value it sets, or None with what is wrong with it."""

    line: int
    value: TargetValue | None
    problems: Sequence[ImportProblem] = ()


def database_lost(exc: BaseException) -> bool:
    """Whether `exc` is a lost database connection: an import it stops is resumed from its
    checkpoint later, as after a crash, rather than failed."""
    return connection_lost(exc)


async def begin_import(
    *, db: Database, brand: str, kind: str, file_name: str, sha256: str, now: datetime
) -> tuple[ImportJob, bool]:
    """The import of this exact file: new, or the unfinished one to resume. The flag says
    whether it is already finished (DONE or FAILED), in which case nothing is to be read."""
    async with db.write() as s:
        found = await store.find_file_import(s, brand=brand, file_name=file_name, sha256=sha256)
        if found is None:
            found = await store.add_file_import(
                s,
                brand=brand,
                import_id=new_id(),
                kind=kind,
                file_name=file_name,
                sha256=sha256,
                state="RUNNING",
                now=now,
            )
    counts = Counts(found.rows_read, found.rows_accepted, found.rows_duplicate, found.rows_refused)
    return ImportJob(brand, found, counts), found.state != "RUNNING"


async def transaction_file_zone(*, db: Database, brand: str) -> ZoneInfo:
    """The zone of times written without an offset in the brand's files."""
    async with db.read() as s:
        zone = await brands.load_brand_time_zone(s, brand=brand)
    if zone is None:
        raise FailedPrecondition(f"brand {brand!r} does not exist")
    return ZoneInfo(zone)


async def _checkpoint(
    s: AsyncSession, job: ImportJob, line: int, delta: Counts, problems: Sequence[ImportProblem]
) -> None:
    """Advances the checkpoint with the batch's counts and problems (in the batch's
    transaction). One record per (line, column), the first reason found: the table's key,
    which a second reason for the same place must not collide on."""
    unique: dict[tuple[int, str], ImportProblem] = {}
    for p in problems:
        unique.setdefault((p.line, p.column[:64]), p)
    await store.add_import_errors(
        s,
        brand=job.brand,
        import_id=job.id,
        errors=[p._replace(column=column) for (_, column), p in unique.items()],
    )
    await store.advance_import_checkpoint(
        s,
        brand=job.brand,
        import_id=job.id,
        line=line,
        added=store.ImportCounts(delta.read, delta.accepted, delta.duplicate, delta.refused),
    )


async def record_transactions_batch(
    *,
    recorder: Recorder,
    job: ImportJob,
    transactions: Sequence[Transaction],
    upto: int,
    read: int,
    refused: Sequence[ImportProblem],
    refused_count: int,
    explain_refusal: Callable[[int, Outcome], ImportProblem],
) -> Counts:
    """Records a batch of a transaction file with its checkpoint (line `upto`), in one unit
    of work. Of the `read` lines, `refused_count` transactions were refused by the file's
    own checks (their `refused` problems); a transaction the recorder refuses is explained
    by `explain_refusal(its index in transactions, its outcome)`."""
    counts = Counts()

    async def also(s: AsyncSession, outcomes: list[Outcome]) -> None:
        # May run more than once (a batch that raced another writer runs again): start afresh.
        nonlocal counts
        problems = list(refused)
        counts = Counts(read, 0, 0, refused_count)
        for index, outcome in enumerate(outcomes):
            if outcome.status is OutcomeStatus.ACCEPTED:
                counts.accepted += 1
            elif outcome.status is OutcomeStatus.DUPLICATE:
                counts.duplicate += 1
            else:
                counts.refused += 1
                problems.append(explain_refusal(index, outcome))
        await _checkpoint(s, job, upto, counts, problems)

    await recorder.record(job.brand, transactions, also=also, snapshots=False)
    job.counts.add(counts)
    return counts


async def finish_import(
    *,
    db: Database,
    job: ImportJob,
    now: datetime,
    state: str = "DONE",
    reason: str = "",
    report: str = "",
) -> FileImport:
    """Marks the import finished (DONE, or FAILED with the reason) and returns its record."""
    async with db.write() as s:
        job.record = await store.finish_file_import(
            s,
            brand=job.brand,
            import_id=job.id,
            state=state,
            reason=reason,
            report=report,
            now=now,
            run_ms=int((time.monotonic() - job.started) * 1000),
        )
    return job.record


async def import_problems(*, db: Database, job: ImportJob) -> list[ImportProblem]:
    """The import's refused rows by line, then column."""
    async with db.read() as s:
        return await store.load_import_errors(s, brand=job.brand, import_id=job.id)


async def record_unreadable_file(
    *, db: Database, brand: str, kind: str, file_name: str, reason: str, now: datetime
) -> FileImport:
    """The FAILED record of a file that could not be read at all, so it has no content hash:
    the same name unreadable again updates that record rather than adding one per poll."""
    async with db.write() as s:
        return await store.record_unreadable_import(
            s, brand=brand, new_id=new_id(), kind=kind, file_name=file_name, reason=reason, now=now
        )


async def record_target_values_batch(
    *,
    db: Database,
    job: ImportJob,
    lines: Sequence[TargetValueLine],
    now: datetime,
    explain: Callable[[int, str, str], ImportProblem],
) -> Counts:
    """Stores the good lines of a target file batch with its checkpoint (its last line);
    a line the brand's members, targets and cycles refuse is explained by
    `explain(line, field, reason)`. Good lines are kept when others are bad."""

    async def attempt() -> Counts:
        async with db.write() as s:
            counts, problems = await _target_values(s, job.brand, lines, now, explain)
            await _checkpoint(s, job, lines[-1].line, counts, problems)
        return counts

    # The values are upserted: what a concurrent SetTargetValues can still race on is the
    # insert of a new key, and the batch then runs again on what is committed.
    counts = await retry_on_conflict(
        attempt, what="import target values", attempts=TARGET_BATCH_ATTEMPTS
    )
    job.counts.add(counts)
    return counts


async def _target_values(
    s: AsyncSession,
    brand: str,
    lines: Sequence[TargetValueLine],
    now: datetime,
    explain: Callable[[int, str, str], ImportProblem],
) -> tuple[Counts, list[ImportProblem]]:
    # Only lines whose fields passed their checks are looked up in the database.
    members = {line.value.member_id for line in lines if line.value is not None}
    checker = await TargetValueCheck.load(s, brand, members)
    problems: list[ImportProblem] = []
    good: dict[tuple[str, str, str, str], TargetValue] = {}
    counts = Counts(read=len(lines))
    for line in lines:
        found = list(line.problems)
        checked = line.value
        if checked is not None:
            checked, reasons = await checker.check(checked)
            found += [explain(line.line, name, reason) for name, reason in reasons]
        if found or checked is None:
            problems += found
            counts.refused += 1
            continue
        # A later line for the same member, target and cycle wins, as it would in two files.
        good[(checked.target_code, checked.cycle, checked.member_id, checked.criterion_id)] = (
            checked
        )
    await upsert_target_values(s, brand, list(good.values()), now)
    counts.accepted = counts.read - counts.refused
    return counts, problems
