"""`attain transactions`: record one sale or return, or import a CSV file of transactions.

The file has the layout of the worker's SFTP transaction files (SPEC section 6), read by the
same line reader and header check (`attain_worker.imports`, imported only when a file is read,
so the rest of the CLI starts without the server): one row per transaction line,
rows of one transaction consecutive, `occurred_at` without an offset in the brand's zone.
"""

from __future__ import annotations

import asyncio
import csv
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from attain.v1 import progress_pb2 as ppb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_cli import bars
from attain_cli.files import short_enum
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, err_console
from attain_cli.runner import InputError, bad_input, run
from attain_client import AttainClient, decimal, line, refund, sale, timestamp

if TYPE_CHECKING:
    from attain_worker.imports import FileRejected

app = typer.Typer(
    help="Transactions: record one, or import a CSV file with a progress bar.",
    no_args_is_help=True,
)

CHUNK = 64 * 1024
# Refusals kept with their details (a file of bad rows must not fill the memory); all are counted.
MAX_REFUSALS = 1000


def _decimal(where: str, text: str) -> typ.Decimal:
    try:
        return decimal(text.strip())
    except ValueError as error:
        raise InputError(where, f"{error} (write it like 4000.00: a dot, no separators)") from None


def _when(where: str, text: str) -> datetime:
    """An ISO 8601 instant; naive means the brand's local time (resolved later)."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        reason = f"{text!r} is not an ISO 8601 time like 2026-11-20T10:00:00+07:00"
        raise InputError(where, reason) from None


async def brand_zone(client: AttainClient) -> ZoneInfo:
    brand = await client.targets.GetBrand(tpb.GetBrandRequest())
    return ZoneInfo(brand.brand.time_zone)


# ---------------------------------------------------------------- record


@app.command("record")
def record(
    ctx: typer.Context,
    txn_id: Annotated[str, typer.Option("--id", help="the transaction's brand-unique id")],
    member: Annotated[str, typer.Option(help="the member's external id")],
    amount: Annotated[str, typer.Option(help="net amount, exact: 4000.00")],
    sku: Annotated[str, typer.Option(help="the line's SKU")],
    category: Annotated[str, typer.Option(help="the line's product category")] = "",
    quantity: Annotated[str, typer.Option(help="the line's quantity, exact")] = "1",
    store: Annotated[str, typer.Option(help="the store's id")] = "",
    at: Annotated[
        str,
        typer.Option(
            help="when, ISO 8601 (default now; without an offset: the brand's zone). Give it "
            "to repeat a recording: the same id and content again is a DUPLICATE"
        ),
    ] = "",
    return_of: Annotated[
        str, typer.Option(help="make it a RETURN of this original sale (amount refunded)")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Record a one-line sale (or, with --return-of, a return); show what it changed."""
    try:
        amount_value = _decimal("--amount", amount)
        quantity_value = _decimal("--quantity", quantity)
        when = _when("--at", at) if at else datetime.now(UTC)
    except InputError as error:
        raise bad_input(error.where, error.reason) from None

    async def work(client: AttainClient) -> ppb.RecordTransactionResponse:
        occurred = (
            when if when.tzinfo is not None else when.replace(tzinfo=await brand_zone(client))
        )
        # The values checked above, as they are sent (`line` writes them back unchanged).
        lines = [
            line(amount_value.value, sku=sku, quantity=quantity_value.value, category=category)
        ]
        if return_of:
            txn = refund(
                txn_id,
                member=member,
                original=return_of,
                lines=lines,
                occurred_at=occurred,
                store=store,
            )
        else:
            txn = sale(txn_id, member=member, lines=lines, occurred_at=occurred, store=store)
        return await client.record_transaction(txn)

    response = run(ctx, work)
    if as_json:
        emit_json(response)
        return
    out = console()
    outcome = short_enum(ppb.RecordOutcome.DESCRIPTOR, response.outcome)
    if response.outcome == ppb.RECORD_OUTCOME_DUPLICATE:
        out.print(f"{txn_id}: {outcome} (already recorded with this content; nothing changed)")
        return
    out.print(f"{txn_id}: {outcome}")
    if response.progress:
        out.print(bars.card(list(response.progress), out, title="Progress it changed:"))
    for award in response.awards:
        out.print(f"Award: {bars.award_line(award)}")
    for skipped in response.not_counted:
        out.print(f"Not counted in {skipped.target_code} {skipped.cycle}: {skipped.reason}")


# ---------------------------------------------------------------- import


@dataclass(slots=True)
class Refusal:
    line: int
    transaction_id: str
    column: str
    reason: str


@dataclass(slots=True)
class _Group:
    """The rows of one transaction being read (consecutive rows with the same id)."""

    first_line: int
    fields: dict[str, str]
    txn: ppb.Transaction
    error: Refusal | None = None


@dataclass(slots=True)
class FileReader:
    """Turns a transaction file into Transaction messages as it is read, never holding it.

    Remembers, per transaction sent, its first line (a compact int array), so the server's
    refusals, which name a stream index, can be told as file lines."""

    path: Path
    zone: ZoneInfo
    on_bytes: Callable[[int], None]
    sent_lines: array[int] = field(default_factory=lambda: array("q"))
    refusals: list[Refusal] = field(default_factory=list)
    refused: int = 0
    rows: int = 0
    stopped: FileRejected | None = None
    columns: int = 0  # how many a row has: set once the file's layout is imported

    async def _chunks(self) -> AsyncIterator[bytes]:
        with self.path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                self.on_bytes(len(chunk))
                yield chunk

    async def transactions(self) -> AsyncIterator[ppb.Transaction]:
        """The file's transactions; locally bad ones are kept in `refusals`, not sent. A file
        that cannot be read on (not UTF-8) ends the stream early and sets `stopped`."""
        from attain_worker.imports import TRANSACTION_COLUMNS, FileRejected, check_header, lines

        self.columns = len(TRANSACTION_COLUMNS)
        current: _Group | None = None
        header = True
        try:
            async for number, text in lines(self._chunks()):
                if header:
                    check_header(text, TRANSACTION_COLUMNS)
                    header = False
                    continue
                if not text.strip():
                    continue
                self.rows += 1
                values = next(csv.reader([text]))
                row = dict(zip(TRANSACTION_COLUMNS, values, strict=False))
                tid = row.get("transaction_id", "").strip()
                if current is None or not tid or tid != current.txn.id:
                    if current is not None and (ready := self._finish(current)) is not None:
                        yield ready
                    current = self._start(number, row, len(values))
                self._add_line(current, number, row, len(values))
            if header:
                raise FileRejected("the file is empty: a header row is required")
            if current is not None and (ready := self._finish(current)) is not None:
                yield ready
        except FileRejected as error:
            self.stopped = error

    def _start(self, number: int, row: dict[str, str], count: int) -> _Group:
        group = _Group(number, row, ppb.Transaction(id=row.get("transaction_id", "").strip()))
        try:
            _check_count(count, self.columns)
            if not row["occurred_at"].strip():
                raise InputError("occurred_at", "is required")
            when = _when("occurred_at", row["occurred_at"])
            txn = group.txn
            txn.member_id = row.get("member_id", "").strip()
            txn.occurred_time.CopyFrom(
                timestamp(when if when.tzinfo is not None else when.replace(tzinfo=self.zone))
            )
            txn.store_id = row.get("store_id", "").strip()
            kind = row.get("type", "").strip().upper() or "SALE"
            if kind not in ("SALE", "RETURN"):
                raise InputError("type", f"must be SALE or RETURN, not {row.get('type')!r}")
            txn.type = ppb.TRANSACTION_TYPE_SALE if kind == "SALE" else ppb.TRANSACTION_TYPE_RETURN
            txn.original_transaction_id = row.get("original_transaction_id", "").strip()
        except InputError as error:
            group.error = Refusal(number, group.txn.id, error.where, error.reason)
        return group

    def _add_line(self, group: _Group, number: int, row: dict[str, str], count: int) -> None:
        if group.error is not None:
            return
        try:
            _check_count(count, self.columns)
            for column in ("transaction_id", "member_id", "occurred_at", "sku"):
                if not row[column].strip():
                    raise InputError(column, "is required")
            for column in (
                "member_id",
                "occurred_at",
                "store_id",
                "type",
                "original_transaction_id",
            ):
                if row[column].strip() != group.fields.get(column, "").strip():
                    raise InputError(
                        column, f"differs from line {group.first_line} of the same transaction"
                    )
            group.txn.lines.append(
                ppb.TransactionLine(
                    sku=row["sku"].strip(),
                    category=row["category"].strip(),
                    quantity=_decimal("quantity", row["quantity"]),
                    amount=_decimal("amount", row["amount"]),
                )
            )
        except InputError as error:
            group.error = Refusal(number, group.txn.id, error.where, error.reason)

    def _finish(self, group: _Group) -> ppb.Transaction | None:
        if group.error is not None:
            self.refused += 1
            if len(self.refusals) < MAX_REFUSALS:
                self.refusals.append(group.error)
            return None
        self.sent_lines.append(group.first_line)
        return group.txn

    def server_refusal(self, refusal: ppb.TransactionRefusal) -> Refusal:
        """A refusal of the stream as a file place: the line of the transaction, or of the
        transaction's line the field names (`lines[2].amount` is its third row)."""
        first = self.sent_lines[refusal.index] if refusal.index < len(self.sent_lines) else 0
        path = refusal.field.removeprefix("transaction.")
        number, column = first, path
        if path.startswith("lines[") and "]" in path:
            number = first + int(path[6 : path.index("]")])
            column = path.rsplit(".", 1)[-1] if "." in path else ""
        # The message may repeat the field path ("transaction.member_id: unknown member").
        reason = refusal.message or refusal.reason
        for prefix in (f"{refusal.field}: ", f"transaction.{path}: "):
            reason = reason.removeprefix(prefix)
        if refusal.reason and refusal.reason != "INVALID_ARGUMENT" and refusal.reason not in reason:
            reason = f"{reason} ({refusal.reason})"
        return Refusal(number, refusal.transaction_id, column, reason)


def _check_count(count: int, expected: int) -> None:
    if count != expected:
        raise InputError("", f"expected {expected} columns, found {count}")


@dataclass(slots=True)
class ImportSummary:
    rows: int
    accepted: int
    duplicate: int
    refused: int
    refusals: list[Refusal]
    stopped: str = ""

    def data(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "refused": self.refused,
            "refusals": [
                {
                    "line": r.line,
                    "transaction_id": r.transaction_id,
                    "column": r.column,
                    "reason": r.reason,
                }
                for r in self.refusals
            ],
            **({"stopped": self.stopped} if self.stopped else {}),
        }


@app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV: transaction_id,member_id,occurred_at,store_id,sku,category,quantity,"
            "amount,type,original_transaction_id",
        ),
    ],
    batch_size: Annotated[
        int, typer.Option(min=1, max=1000, help="transactions per message")
    ] = 500,
    as_json: JsonOpt = False,
) -> None:
    """Stream a CSV file of transactions to the server in batches, with a progress bar. Good
    rows are kept when others are refused; each refusal is shown with its line. Exit code 2
    when some were refused."""
    size = file.stat().st_size

    async def work(client: AttainClient) -> ImportSummary:
        zone = await brand_zone(client)
        status = err_console()
        bar = Progress(
            TextColumn("importing {task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]} rows"),
            console=status,
            transient=True,
            disable=not status.is_terminal,
        )
        task = bar.add_task(file.name, total=size or 1, rows=0)
        reader: FileReader

        def advance(count: int) -> None:
            bar.update(task, advance=count, rows=reader.rows)

        reader = FileReader(file, zone, advance)
        with bar:
            response = await client.record_transactions(
                reader.transactions(), batch_size=batch_size
            )
        if reader.stopped and not reader.rows:
            raise InputError(str(file), str(reader.stopped))
        refusals = reader.refusals + [reader.server_refusal(r) for r in response.refusals]
        refusals.sort(key=lambda r: r.line)
        del refusals[MAX_REFUSALS:]
        return ImportSummary(
            rows=reader.rows,
            accepted=response.accepted,
            duplicate=response.duplicate,
            refused=response.refused + reader.refused,
            refusals=refusals,
            stopped=str(reader.stopped) if reader.stopped else "",
        )

    summary = run(ctx, work)
    if as_json:
        emit_json(summary.data())
    else:
        out = console()
        out.print(
            f"{file.name}: {summary.rows} rows; {summary.accepted} accepted, "
            f"{summary.duplicate} duplicate, {summary.refused} refused."
        )
        for r in summary.refusals:
            where = f"{r.column}: " if r.column else ""
            out.print(f"line {r.line}: {r.transaction_id or '(no id)'}: {where}{r.reason}")
        if summary.refused > len(summary.refusals):
            out.print(f"(the first {len(summary.refusals)} refusals are shown)")
        if summary.stopped:
            err_console().print(
                f"[bold red]error:[/] {file}: {summary.stopped}; the rows before it were sent",
                highlight=False,
            )
    if summary.refused or summary.stopped:
        raise typer.Exit(2)


def register(app_: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    app_.add_typer(app, name="transactions")
