"""Streaming CSV imports (SPEC section 6): batches, a checkpoint per batch, an error report.

A file is read as a stream of byte chunks and never held whole. Rows go to the same
application code as the gRPC API, a batch at a time; the batch's rows, its refused rows and
the import's checkpoint (the last line committed) commit in one database transaction. A run
killed at any point resumes after the checkpoint, and transaction ids make any replayed row a
duplicate, so no row is lost or counted twice.

Fields never contain line breaks in these files: one physical line is one row, which keeps
line numbers exact for the error report.
"""

from __future__ import annotations

import codecs
import csv
import io
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.application.admin import TargetValueCheck, upsert_target_values
from attain_server.application.awards import new_id
from attain_server.application.ingest import Outcome, OutcomeStatus, Recorder
from attain_server.domain.decimals import DecimalFormatError, parse_decimal
from attain_server.domain.errors import InvalidArgument
from attain_server.domain.kpis import Line
from attain_server.domain.model import TargetValue
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from attain_server.store.tables import (
    BrandRow,
    FileImportRow,
    ImportErrorRow,
)

log = structlog.get_logger("attain.imports")

TARGET_COLUMNS = ("member_id", "target_code", "cycle", "target_value")
TRANSACTION_COLUMNS = (
    "transaction_id",
    "member_id",
    "occurred_at",
    "store_id",
    "sku",
    "category",
    "quantity",
    "amount",
    "type",
    "original_transaction_id",
)
# Transactions per unit of work (and checkpoint). A commit writes every page the batch
# dirtied, and random members dirty about one progress page each: 4,000 a batch imported
# 100,000 rows 10% faster than 1,000 (decision 0012). A kill repeats at most one batch.
BATCH_TRANSACTIONS = 4000
BATCH_TARGET_ROWS = 2000
# The type column: empty means SALE.
_KINDS = ("SALE", "RETURN", "")


class FileRejected(Exception):
    """The whole file cannot be imported (bad header, not UTF-8): it goes to the failed folder."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    column: str
    value: str
    reason: str


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


# ---------------------------------------------------------------- reading lines


async def _data_rows(
    chunks: AsyncIterator[bytes], columns: Sequence[str], resume_after: int
) -> AsyncIterator[list[tuple[int, str, list[str]]]]:
    """The data rows of a file with the header `columns`, a block per chunk read: (line
    number, text, fields), skipping blank lines and those at or before the checkpoint
    `resume_after`. A file without even a header row is rejected once the stream ends."""
    header_seen = False
    async for block in line_blocks(chunks):
        rows = []
        for number, text in block:
            if not header_seen:
                check_header(text, columns)
                header_seen = True
            elif number > resume_after and text.strip():
                rows.append((number, text, _fields(text)))
        if rows:
            yield rows
    if not header_seen:
        raise FileRejected("the file is empty: a header row is required")


async def lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """(line number, text) from a byte stream: strict UTF-8, optional BOM, \\n or \\r\\n."""
    async for block in line_blocks(chunks):
        for item in block:
            yield item


async def line_blocks(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[tuple[int, str]]]:
    """`lines`, a block of them per chunk: one suspension per chunk rather than per line."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    pending = ""
    number = 0
    first = True
    async for chunk in chunks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise FileRejected(
                f"the file is not UTF-8 (after line {number}): {exc.reason}"
            ) from exc
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        pending += text
        *complete, pending = pending.split("\n")
        if complete:
            start = number + 1
            number += len(complete)
            yield [
                (n, raw[:-1] if raw.endswith("\r") else raw)
                for n, raw in zip(range(start, number + 1), complete, strict=True)
            ]
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise FileRejected(f"the file ends inside a UTF-8 character: {exc.reason}") from exc
    if pending.strip():
        yield [(number + 1, pending.removesuffix("\r"))]


def _fields(text: str) -> list[str]:
    """One line's fields. A line without quotes or carriage returns reads the same split at
    its commas, which is several times faster than the csv module for one line."""
    if '"' in text or "\r" in text:
        return next(csv.reader([text]))
    return text.split(",")


def check_header(text: str, expected: Sequence[str]) -> None:
    found = [f.strip() for f in _fields(text)]
    if found != list(expected):
        raise FileRejected(
            f"the header must be {','.join(expected)} (found {','.join(found) or 'nothing'})"
        )


# ---------------------------------------------------------------- the import record


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


async def _checkpoint(
    s: AsyncSession, job: Job, line: int, delta: Counts, errors: Sequence[RowError]
) -> None:
    """Advances the checkpoint with the batch's counts and errors (in the batch's transaction)."""
    if errors:
        await s.exec(
            insert(ImportErrorRow.__table__),  # type: ignore[attr-defined]
            params=[
                {
                    "brand_code": job.brand,
                    "import_id": job.id,
                    "line": e.line,
                    "column": e.column,
                    "value": e.value[:1024],
                    "reason": e.reason[:2000],
                }
                for e in errors
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
        row.failure_reason = reason
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


def report_csv(errors: Sequence[ImportErrorRow]) -> str:
    """The error report: line, column, value, reason."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "column", "value", "reason"])
    for e in errors:
        writer.writerow([e.line, e.column, e.value, e.reason])
    return out.getvalue()


# ---------------------------------------------------------------- transaction files


@dataclass(slots=True)
class _Pending:
    """The rows of one transaction (consecutive lines with the same id)."""

    id: str
    first_line: int
    last_line: int
    fields: dict[str, str]
    occurred_at: datetime
    lines: list[Line] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _parse_amount(e: list[RowError], number: int, column: str, raw: str) -> Decimal:
    try:
        value = parse_decimal(raw.strip())
    except DecimalFormatError as exc:
        e.append(RowError(number, column, raw, str(exc)))
        return Decimal(0)
    if value < 0:
        e.append(RowError(number, column, raw, "must not be negative"))
        return Decimal(0)
    return value


def _parse_time(e: list[RowError], number: int, raw: str, zone: ZoneInfo) -> datetime:
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        e.append(
            RowError(
                number, "occurred_at", raw, "is not an ISO 8601 time like 2026-11-20T10:00:00+07:00"
            )
        )
        return datetime(1970, 1, 1, tzinfo=zone)
    # No offset in the file: the time is local to the brand (SPEC section 6).
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def _transaction(p: _Pending) -> Transaction | None:
    if p.errors:
        return None
    kind = p.fields["type"].strip().upper() or "SALE"
    return Transaction(
        id=p.id,
        member_id=p.fields["member_id"].strip(),
        occurred_at=p.occurred_at,
        store_id=p.fields["store_id"].strip(),
        type=TransactionType(kind),
        lines=tuple(p.lines),
        original_id=p.fields["original_transaction_id"].strip(),
    )


async def import_transactions(
    db: Database,
    recorder: Recorder,
    job: Job,
    chunks: AsyncIterator[bytes],
    *,
    batch_size: int = BATCH_TRANSACTIONS,
) -> Counts:
    """Imports a transaction file, resuming after the job's checkpoint."""
    async with db.read() as s:
        brand = await s.get_one(BrandRow, job.brand)
    zone = ZoneInfo(brand.time_zone)
    resume_after = job.row.committed_line
    batch: list[_Pending] = []
    current: _Pending | None = None

    async def flush(upto: int) -> None:
        nonlocal batch
        if not batch:
            return
        await _record_batch(recorder, job, batch, upto)
        batch = []

    width = len(TRANSACTION_COLUMNS)
    async for block in _data_rows(chunks, TRANSACTION_COLUMNS, resume_after):
        for number, text, values in block:
            errors: list[RowError] = []
            if len(values) != width:
                errors.append(
                    RowError(
                        number,
                        "",
                        text[:200],
                        f"expected {width} columns, found {len(values)}",
                    )
                )
                values = (values + [""] * width)[:width]
            tid, member, occurred, store, sku, category, quantity, amount, kind, original = values
            tid = tid.strip()
            first = current is None or tid != current.id or not tid
            if first:
                if current is not None:
                    batch.append(current)
                    if len(batch) >= batch_size:
                        await flush(current.last_line)
                when = _parse_time(errors, number, occurred, zone)
                current = _Pending(
                    tid, number, number, dict(zip(TRANSACTION_COLUMNS, values, strict=True)), when
                )
            assert current is not None
            current.last_line = number
            if not tid:
                errors.append(RowError(number, "transaction_id", "", "is required"))
            for column, value in (("member_id", member), ("occurred_at", occurred), ("sku", sku)):
                if not value.strip():
                    errors.append(RowError(number, column, "", "is required"))
            if kind.strip().upper() not in _KINDS:
                errors.append(RowError(number, "type", kind, "must be SALE or RETURN"))
            parsed_quantity = _parse_amount(errors, number, "quantity", quantity)
            parsed_amount = _parse_amount(errors, number, "amount", amount)
            if not errors:
                current.lines.append(
                    Line(sku.strip(), category.strip(), parsed_quantity, parsed_amount)
                )
            else:
                current.errors += errors
            if not first:
                fields = current.fields
                for column, value in (
                    ("member_id", member),
                    ("occurred_at", occurred),
                    ("store_id", store),
                    ("type", kind),
                    ("original_transaction_id", original),
                ):
                    if value.strip() != fields[column].strip():
                        current.errors.append(
                            RowError(
                                number,
                                column,
                                value,
                                f"differs from line {current.first_line} of the same transaction",
                            )
                        )
    if current is not None:
        batch.append(current)
    if batch:
        await flush(batch[-1].last_line)
    return job.counts


async def _record_batch(recorder: Recorder, job: Job, batch: list[_Pending], upto: int) -> None:
    ready: list[tuple[_Pending, Transaction]] = []
    errors: list[RowError] = []
    delta = Counts()
    for p in batch:
        delta.read += p.last_line - p.first_line + 1
        txn = _transaction(p)
        if txn is None:
            errors += p.errors
            delta.refused += 1
        else:
            ready.append((p, txn))

    counts = Counts()

    async def also(s: AsyncSession, outcomes: list[Outcome]) -> None:
        # May run more than once (a batch that raced another writer runs again): start afresh.
        nonlocal counts
        more = list(errors)
        counts = Counts(delta.read, 0, 0, delta.refused)
        for (p, _), outcome in zip(ready, outcomes, strict=True):
            if outcome.status is OutcomeStatus.ACCEPTED:
                counts.accepted += 1
            elif outcome.status is OutcomeStatus.DUPLICATE:
                counts.duplicate += 1
            else:
                counts.refused += 1
                more.append(_refusal_error(p, outcome))
        await _checkpoint(s, job, upto, counts, more)

    await recorder.record(job.brand, [t for _, t in ready], also=also, snapshots=False)
    job.counts.add(counts)


_FIELD_COLUMNS = {
    "member_id": "member_id",
    "occurred_time": "occurred_at",
    "store_id": "store_id",
    "original_transaction_id": "original_transaction_id",
    "id": "transaction_id",
}


def _refusal_error(p: _Pending, outcome: Outcome) -> RowError:
    error = outcome.error
    column = ""
    value = ""
    message = error.message if error else "refused"
    if isinstance(error, InvalidArgument):
        violation = error.violations[0]
        path = violation.field.removeprefix("transaction.")
        message = violation.reason
        if path.startswith("lines["):
            index = int(path[6 : path.index("]")])
            column = path.rsplit(".", 1)[-1]
            return RowError(p.first_line + index, column, value, message)
        column = _FIELD_COLUMNS.get(path, path)
        value = p.fields.get(column, "")
    elif error is not None and error.reason == "CYCLE_CLOSED":
        column, value = "occurred_at", p.fields["occurred_at"]
    elif error is not None and error.reason == "TRANSACTION_CONFLICT":
        column, value = "transaction_id", p.id
    return RowError(p.first_line, column, value, message)


# ---------------------------------------------------------------- target files


async def import_targets(
    db: Database,
    job: Job,
    chunks: AsyncIterator[bytes],
    *,
    now: datetime,
    batch_size: int = BATCH_TARGET_ROWS,
) -> Counts:
    """Imports member target values; good rows are kept when others are bad."""
    batch: list[tuple[int, dict[str, str] | None]] = []
    async for block in _data_rows(chunks, TARGET_COLUMNS, job.row.committed_line):
        for number, _text, values in block:
            batch.append(
                (
                    number,
                    dict(zip(TARGET_COLUMNS, values, strict=False))
                    if len(values) == len(TARGET_COLUMNS)
                    else None,
                )
            )
            if len(batch) >= batch_size:
                await _target_batch(db, job, batch, now)
                batch = []
    if batch:
        await _target_batch(db, job, batch, now)
    return job.counts


async def _target_batch(
    db: Database, job: Job, batch: list[tuple[int, dict[str, str] | None]], now: datetime
) -> None:
    for attempt in range(3):
        try:
            async with db.write() as s:
                counts, errors = await _target_rows(s, job.brand, batch, now)
                await _checkpoint(s, job, batch[-1][0], counts, errors)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    job.counts.add(counts)


# Target file columns by the field names of TargetValueCheck's problems.
_TARGET_FIELD_COLUMNS = {
    "member_id": "member_id",
    "target_code": "target_code",
    "cycle": "cycle",
    "criterion_id": "target_code",
    "value": "target_value",
}


async def _target_rows(
    s: AsyncSession, brand: str, batch: list[tuple[int, dict[str, str] | None]], now: datetime
) -> tuple[Counts, list[RowError]]:
    members = {row["member_id"].strip() for _, row in batch if row is not None}
    checker = await TargetValueCheck.load(s, brand, members)
    errors: list[RowError] = []
    good: dict[tuple[str, str, str, str], TargetValue] = {}
    counts = Counts(read=len(batch))
    for number, row in batch:
        if row is None:
            errors.append(RowError(number, "", "", f"expected {len(TARGET_COLUMNS)} columns"))
            counts.refused += 1
            continue
        member, code, cycle = (row[c].strip() for c in ("member_id", "target_code", "cycle"))
        try:
            value = parse_decimal(row["target_value"].strip())
        except DecimalFormatError as exc:
            errors.append(RowError(number, "target_value", row["target_value"], str(exc)))
            counts.refused += 1
            continue
        checked, problems = await checker.check(TargetValue(member, code, cycle, "", value))
        for field_name, reason in problems:
            column = _TARGET_FIELD_COLUMNS[field_name]
            errors.append(RowError(number, column, row[column], reason))
        if problems:
            counts.refused += 1
            continue
        # A later row for the same member, target and cycle wins, as it would in two files.
        good[(code, cycle, member, checked.criterion_id)] = checked
    await upsert_target_values(s, brand, list(good.values()), now)
    counts.accepted = counts.read - counts.refused
    return counts, errors
