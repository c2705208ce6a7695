"""The record of one file import (SPEC section 6): its checkpoint, counts and error report.

The checkpoint (the last line committed), the counts and the refused rows' error records
advance in the same database transaction as the rows they describe, so a run killed at any
point resumes exactly after the last batch it committed.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.application.awards import new_id
from attain_server.store.engine import Database
from attain_server.store.tables import FileImportRow, ImportErrorRow

from .rows import RowError, shown


@dataclass(slots=True)
class Counts:
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
class Job:
    """One file being imported: its record and the running counters."""

    brand: str
    row: FileImportRow
    counts: Counts = field(default_factory=Counts)
    started: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.row.id


async def begin(
    db: Database, *, brand: str, kind: str, file_name: str, sha256: str, now: datetime
) -> tuple[Job, bool]:
    """The import of this exact file: new, or the unfinished one to resume. The flag says
    whether it is already finished (DONE or FAILED), in which case nothing is to be read."""
    async with db.write() as s:
        row = (
            await s.exec(
                select(FileImportRow).where(
                    FileImportRow.brand_code == brand,
                    FileImportRow.file_name == file_name,
                    FileImportRow.content_sha256 == sha256,
                )
            )
        ).first()
        if row is None:
            row = FileImportRow(
                brand_code=brand,
                id=new_id(),
                kind=kind,
                file_name=file_name,
                content_sha256=sha256,
                state="RUNNING",
                start_time=now,
            )
            s.add(row)
            await s.flush()
    job = Job(
        brand, row, Counts(row.rows_read, row.rows_accepted, row.rows_duplicate, row.rows_refused)
    )
    return job, row.state != "RUNNING"


async def checkpoint(
    s: AsyncSession, job: Job, line: int, delta: Counts, errors: Sequence[RowError]
) -> None:
    """Advances the checkpoint with the batch's counts and errors (in the batch's transaction).
    One error record per (line, column), the first reason found: the table's key, which a
    second reason for the same place must not collide on."""
    unique: dict[tuple[int, str], RowError] = {}
    for e in errors:
        unique.setdefault((e.line, e.column[:64]), e)
    if unique:
        await s.exec(
            insert(ImportErrorRow.__table__),  # type: ignore[attr-defined]
            params=[
                {
                    "brand_code": job.brand,
                    "import_id": job.id,
                    "line": line_number,
                    "column": column,
                    "value": shown(e.value),
                    "reason": shown(e.reason, 1000),
                }
                for (line_number, column), e in unique.items()
            ],
        )
    table = FileImportRow.__table__  # type: ignore[attr-defined]
    await s.exec(
        update(table)
        .where(table.c.brand_code == job.brand, table.c.id == job.id)
        .values(
            committed_line=line,
            rows_read=table.c.rows_read + delta.read,
            rows_accepted=table.c.rows_accepted + delta.accepted,
            rows_duplicate=table.c.rows_duplicate + delta.duplicate,
            rows_refused=table.c.rows_refused + delta.refused,
        )
    )


async def finish(
    db: Database,
    job: Job,
    *,
    now: datetime,
    state: str = "DONE",
    reason: str = "",
    report: str = "",
) -> FileImportRow:
    """Marks the import finished (DONE, or FAILED with the reason) and returns its record."""
    async with db.write() as s:
        row = await s.get_one(FileImportRow, (job.brand, job.id), populate_existing=True)
        row.state = state
        row.failure_reason = shown(reason, 1000)
        row.error_report = report
        row.finish_time = now
        row.duration_ms = row.duration_ms + int((time.monotonic() - job.started) * 1000)
        s.add(row)
        await s.flush()
        return row


async def error_rows(db: Database, job: Job) -> list[ImportErrorRow]:
    async with db.read() as s:
        rows = await s.exec(
            select(ImportErrorRow)
            .where(ImportErrorRow.brand_code == job.brand, ImportErrorRow.import_id == job.id)
            .order_by(col(ImportErrorRow.line), col(ImportErrorRow.column))
        )
        return list(rows.all())


async def unreadable(
    db: Database, *, brand: str, kind: str, file_name: str, reason: str, now: datetime
) -> FileImportRow:
    """The FAILED record of a file that could not be read at all, so it has no content hash:
    the empty hash stands for it, and the same name unreadable again updates that record
    rather than adding one per poll."""
    async with db.write() as s:
        row = (
            await s.exec(
                select(FileImportRow).where(
                    FileImportRow.brand_code == brand,
                    FileImportRow.file_name == file_name,
                    FileImportRow.content_sha256 == "",
                )
            )
        ).first()
        if row is None:
            row = FileImportRow(
                brand_code=brand,
                id=new_id(),
                kind=kind,
                file_name=file_name,
                content_sha256="",
                state="FAILED",
                start_time=now,
            )
        row.start_time = row.finish_time = now
        row.failure_reason = shown(reason, 1000)
        s.add(row)
        await s.flush()
        return row


def report_csv(errors: Sequence[ImportErrorRow], failure: str = "") -> str:
    """The error report: line, column, value, reason; a failure of the whole file is line 0."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "column", "value", "reason"])
    for e in errors:
        writer.writerow([e.line, e.column, e.value, e.reason])
    if failure:
        writer.writerow([0, "", "", shown(failure, 1000)])
    return out.getvalue()
