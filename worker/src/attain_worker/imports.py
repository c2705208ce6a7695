"""Streaming CSV imports (SPEC section 6): batches, a checkpoint per batch, an error report.

A file is read as a stream of byte chunks and never held whole, its lines and fields checked
as `rows` reads them: a bad line is one refused row, never a failed batch. Rows go to the same
application code as the gRPC API, a batch at a time; the batch's rows, its refused rows and
the import's checkpoint (the last line committed) commit in one database transaction. A run
killed at any point resumes after the checkpoint, and transaction ids make any replayed row a
duplicate, so no row is lost or counted twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog

from attain_server.app import App
from attain_server.application.imports import (
    Counts,
    ImportJob,
    ImportProblem,
    TargetValueLine,
    record_target_values_batch,
    record_transactions_batch,
    transaction_file_zone,
)
from attain_server.application.ingest import Outcome, Recorder
from attain_server.domain.decimals import DecimalFormatError, parse_decimal
from attain_server.domain.errors import InvalidArgument
from attain_server.domain.kpis import Line
from attain_server.domain.model import TargetValue
from attain_server.domain.transactions import Transaction, TransactionType, parse_amount

from .records import problem

# The CLI reads its transaction files with the same reader and header check.
from .rows import FileRejected as FileRejected
from .rows import Layout, ReadLine, RowError, check_fields, line_blocks
from .rows import check_header as check_header
from .rows import lines as lines

log = structlog.get_logger("attain.imports")

# The columns of each kind of file with the most characters each may hold: the widths of
# the columns they are stored in (labels and ids are 128 in the domain and the tables).
TARGET_LAYOUT = Layout({"member_id": 128, "target_code": 64, "cycle": 32, "target_value": 64})
TRANSACTION_LAYOUT = Layout(
    dict.fromkeys(
        (
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
        ),
        128,
    )
)
TARGET_COLUMNS = TARGET_LAYOUT.columns
TRANSACTION_COLUMNS = TRANSACTION_LAYOUT.columns
# Transactions per unit of work (and checkpoint). A commit writes every page the batch
# dirtied, and random members dirty about one progress page each: 4,000 a batch imported
# 100,000 rows 10% faster than 1,000 (decision 0012). A kill repeats at most one batch.
BATCH_TRANSACTIONS = 4000
BATCH_TARGET_ROWS = 2000
# The type column: empty means SALE.
_KINDS = ("SALE", "RETURN", "")


# ---------------------------------------------------------------- reading rows


async def _data_rows(
    chunks: AsyncIterator[bytes], layout: Layout, resume_after: int
) -> AsyncIterator[list[ReadLine]]:
    """The data lines of a file with the header of `layout`, a block per chunk read,
    skipping blank lines and those at or before the checkpoint `resume_after`. A file
    without even a header row is rejected once the stream ends."""
    header_seen = False
    async for block in line_blocks(chunks):
        rows = []
        for number, text, cut in block:
            if not header_seen:
                check_header(text, layout.columns, cut)
                header_seen = True
            elif number > resume_after and (cut or text.strip()):
                rows.append((number, text, cut))
        if rows:
            yield rows
    if not header_seen:
        raise FileRejected("the file is empty: a header row is required")


# ---------------------------------------------------------------- transaction files

# A problem row has no usable time; its transaction is refused before the time is used.
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = Decimal(0)


@dataclass(slots=True)
class _Row:
    """One line of a transaction file, checked: its fields (as many as the header has,
    padded when the line had fewer) and what is wrong with it, at most one reason a column."""

    number: int
    values: list[str]
    problems: dict[str, RowError]
    # The line had the header's columns and was read whole, so its fields mean what they say.
    whole: bool
    when: datetime = _NO_TIME
    quantity: Decimal = _ZERO
    amount: Decimal = _ZERO


@dataclass(slots=True)
class _Pending:
    """The rows of one transaction (consecutive lines with the same id)."""

    id: str
    first_line: int
    last_line: int
    fields: dict[str, str]
    occurred_at: datetime
    rows: int = 0
    lines: list[Line] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)  # the file line of each of `lines`
    errors: list[RowError] = field(default_factory=list)


def _parse_amount(row: _Row, column: str, raw: str) -> Decimal:
    if column in row.problems:
        return _ZERO
    try:
        return parse_amount(raw.strip())
    except DecimalFormatError as exc:
        row.problems[column] = RowError(row.number, column, raw, str(exc))
        return _ZERO


def _parse_time(row: _Row, raw: str, zone: ZoneInfo) -> datetime:
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        reason = "is not an ISO 8601 time like 2026-11-20T10:00:00+07:00"
    else:
        # No offset in the file: the time is local to the brand (SPEC section 6).
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
        # An instant at the very ends of the calendar cannot be moved into every zone.
        try:
            year = when.astimezone(UTC).year
        except OverflowError:
            year = 0
        if 1 < year < 9999:
            return when
        reason = "is outside the supported times (years 2 to 9998)"
    row.problems["occurred_at"] = RowError(row.number, "occurred_at", raw, reason)
    return _NO_TIME


def _transaction_row(number: int, text: str, cut: bool, zone: ZoneInfo) -> _Row:
    values, problems = check_fields(number, text, cut, TRANSACTION_LAYOUT)
    width = len(TRANSACTION_COLUMNS)
    whole = len(values) == width and not cut
    row = _Row(number, (values + [""] * width)[:width], problems, whole)
    if not whole:
        return row
    tid, member, occurred, _, sku, _, quantity, amount, kind, _ = values
    for column, value in (
        ("transaction_id", tid),
        ("member_id", member),
        ("occurred_at", occurred),
        ("sku", sku),
    ):
        if not value.strip():
            problems.setdefault(column, RowError(number, column, "", "is required"))
    if "occurred_at" not in problems:
        row.when = _parse_time(row, occurred, zone)
    if kind.strip().upper() not in _KINDS:
        problems.setdefault("type", RowError(number, "type", kind, "must be SALE or RETURN"))
    row.quantity = _parse_amount(row, "quantity", quantity)
    row.amount = _parse_amount(row, "amount", amount)
    return row


def _add_row(p: _Pending, row: _Row) -> None:
    p.last_line = row.number
    p.rows += 1
    if row.problems:
        p.errors += row.problems.values()
        return
    values = row.values
    p.lines.append(Line(values[4].strip(), values[5].strip(), row.quantity, row.amount))
    p.line_numbers.append(row.number)


# Columns that must read the same on every line of one transaction.
_SAME_COLUMNS = (
    (1, "member_id"),
    (2, "occurred_at"),
    (3, "store_id"),
    (8, "type"),
    (9, "original_transaction_id"),
)


def _continue(p: _Pending, row: _Row) -> None:
    """A further line of `p`'s transaction."""
    if row.whole:
        for index, column in _SAME_COLUMNS:
            value = row.values[index]
            if value.strip() != p.fields[column].strip():
                row.problems.setdefault(
                    column,
                    RowError(
                        row.number,
                        column,
                        value,
                        f"differs from line {p.first_line} of the same transaction",
                    ),
                )
    _add_row(p, row)


def _start(row: _Row) -> _Pending:
    p = _Pending(
        row.values[0].strip(),
        row.number,
        row.number,
        dict(zip(TRANSACTION_COLUMNS, row.values, strict=True)),
        row.when,
    )
    _add_row(p, row)
    return p


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
    app: App,
    job: ImportJob,
    chunks: AsyncIterator[bytes],
    *,
    batch_size: int = BATCH_TRANSACTIONS,
) -> Counts:
    """Imports a transaction file, resuming after the job's checkpoint. A bad line refuses
    its transaction alone, with its reasons in the error records."""
    zone = await transaction_file_zone(db=app.db, brand=job.brand)
    batch: list[_Pending] = []
    current: _Pending | None = None
    async for block in _data_rows(chunks, TRANSACTION_LAYOUT, job.record.committed_line):
        for number, text, cut in block:
            row = _transaction_row(number, text, cut, zone)
            tid = row.values[0].strip()
            if current is not None and tid and tid == current.id:
                _continue(current, row)
                continue
            if current is not None:
                batch.append(current)
                if len(batch) >= batch_size:
                    await _record_batch(app.recorder, job, batch, current.last_line)
                    batch = []
            current = _start(row)
    if current is not None:
        batch.append(current)
    if batch:
        await _record_batch(app.recorder, job, batch, batch[-1].last_line)
    return job.counts


async def _record_batch(
    recorder: Recorder, job: ImportJob, batch: list[_Pending], upto: int
) -> None:
    ready: list[tuple[_Pending, Transaction]] = []
    errors: list[RowError] = []
    refused = 0
    for p in batch:
        txn = _transaction(p)
        if txn is None:
            errors += p.errors
            refused += 1
        else:
            ready.append((p, txn))
    await record_transactions_batch(
        recorder=recorder,
        job=job,
        transactions=[t for _, t in ready],
        upto=upto,
        read=sum(p.rows for p in batch),
        refused=[problem(e) for e in errors],
        refused_count=refused,
        explain_refusal=lambda index, outcome: problem(_refusal_error(ready[index][0], outcome)),
    )


_FIELD_COLUMNS = {
    "member_id": "member_id",
    "occurred_time": "occurred_at",
    "store_id": "store_id",
    "original_transaction_id": "original_transaction_id",
    "id": "transaction_id",
}


def _refusal_error(p: _Pending, outcome: Outcome) -> RowError:
    """The error record of a transaction the application refused, at the line and column
    the refusal names (the first of its reasons)."""
    error = outcome.error
    message = error.message if error else "refused"
    if isinstance(error, InvalidArgument) and error.violations:
        violation = error.violations[0]
        path = violation.field
        message = violation.reason
        if path.startswith("lines[") and "]" in path:
            index = int(path[6 : path.index("]")])
            number = p.line_numbers[index] if index < len(p.line_numbers) else p.first_line
            # "lines[2]" alone: the line returns neither a quantity nor an amount.
            column = path.rsplit(".", 1)[-1] if "." in path else "quantity"
            return RowError(number, column, "", message)
        column = _FIELD_COLUMNS.get(path, path)
        return RowError(p.first_line, column, p.fields.get(column, ""), message)
    if error is not None and error.reason == "CYCLE_CLOSED":
        return RowError(p.first_line, "occurred_at", p.fields["occurred_at"], message)
    if error is not None and error.reason == "TRANSACTION_CONFLICT":
        return RowError(p.first_line, "transaction_id", p.id, message)
    return RowError(p.first_line, "", "", message)


# ---------------------------------------------------------------- target files


@dataclass(frozen=True, slots=True)
class _TargetLine:
    """One line of a target file, checked: its fields by column and what is wrong with it."""

    number: int
    fields: dict[str, str]
    problems: dict[str, RowError]
    value: Decimal = _ZERO


def _target_line(number: int, text: str, cut: bool) -> _TargetLine:
    values, problems = check_fields(number, text, cut, TARGET_LAYOUT)
    if len(values) != len(TARGET_COLUMNS) or cut:
        return _TargetLine(number, {}, problems)
    fields = dict(zip(TARGET_COLUMNS, values, strict=True))
    for column in ("member_id", "target_code", "cycle"):
        if not fields[column].strip():
            problems.setdefault(column, RowError(number, column, "", "is required"))
    if "target_value" in problems:
        return _TargetLine(number, fields, problems)
    try:
        value = parse_decimal(fields["target_value"].strip())
    except DecimalFormatError as exc:
        problems["target_value"] = RowError(number, "target_value", values[3], str(exc))
        value = _ZERO
    return _TargetLine(number, fields, problems, value)


async def import_targets(
    app: App,
    job: ImportJob,
    chunks: AsyncIterator[bytes],
    *,
    now: datetime,
    batch_size: int = BATCH_TARGET_ROWS,
) -> Counts:
    """Imports member target values; good rows are kept when others are bad."""
    batch: list[_TargetLine] = []
    async for block in _data_rows(chunks, TARGET_LAYOUT, job.record.committed_line):
        for number, text, cut in block:
            batch.append(_target_line(number, text, cut))
            if len(batch) >= batch_size:
                await _target_batch(app, job, batch, now)
                batch = []
    if batch:
        await _target_batch(app, job, batch, now)
    return job.counts


# Target file columns by the field names of the target value checks' problems.
_TARGET_FIELD_COLUMNS = {
    "member_id": "member_id",
    "target_code": "target_code",
    "cycle": "cycle",
    "criterion_id": "target_code",
    "value": "target_value",
}


def _target_value_line(row: _TargetLine) -> TargetValueLine:
    if row.problems:
        return TargetValueLine(row.number, None, [problem(e) for e in row.problems.values()])
    member, code, cycle = (row.fields[c].strip() for c in ("member_id", "target_code", "cycle"))
    return TargetValueLine(row.number, TargetValue(member, code, cycle, "", row.value))


async def _target_batch(app: App, job: ImportJob, batch: list[_TargetLine], now: datetime) -> None:
    by_number = {row.number: row for row in batch}

    def explain(number: int, field_name: str, reason: str) -> ImportProblem:
        column = _TARGET_FIELD_COLUMNS[field_name]
        return problem(RowError(number, column, by_number[number].fields[column], reason))

    await record_target_values_batch(
        db=app.db,
        job=job,
        lines=[_target_value_line(row) for row in batch],
        now=now,
        explain=explain,
    )
