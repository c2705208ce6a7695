"""`attain members`: the brand's members (its sales channels), one at a time or from a CSV.

The import CSV has a header row; only `external_id` is required:

    external_id,display_name,level,groups
    M-001,Toko Makmur,GOLD,distributor;north-region

`groups` holds the member's audience groups separated by `;`. An upsert replaces the member:
an empty or absent column clears that field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import grpc
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from attain.v1 import targets_pb2 as tpb
from attain_cli.files import CsvFile, CsvRow, RowError, describe
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, err_console, show
from attain_cli.runner import run
from attain_client import AttainClient, AttainError, pages

app = typer.Typer(help="Members: upsert, show, list, import from CSV.", no_args_is_help=True)

COLUMNS = ["external_id", "display_name", "level", "groups", "update_time"]
CSV_COLUMNS = ["display_name", "level", "groups"]
# Member fields as the server names them in field violations -> CSV columns.
FIELD_COLUMNS = {
    "member.external_id": "external_id",
    "member.display_name": "display_name",
    "member.level": "level",
    "member.groups": "groups",
}
IN_FLIGHT = 16
SHOWN_ERRORS = 200
KEPT_ERRORS = 10_000  # beyond this only the count grows, so a hopeless file cannot fill memory


@app.command("upsert")
def upsert(
    ctx: typer.Context,
    external_id: Annotated[str, typer.Argument(help="the brand's code for the member")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    level: Annotated[str, typer.Option(help="level, e.g. GOLD")] = "",
    group: Annotated[
        list[str] | None, typer.Option(help="an audience group (repeat for several)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a member (fields not given are cleared)."""

    async def work(client: AttainClient) -> tpb.UpsertMemberResponse:
        member = tpb.Member(
            external_id=external_id, display_name=name, level=level, groups=group or []
        )
        return await client.targets.UpsertMember(tpb.UpsertMemberRequest(member=member))

    done = run(ctx, work)
    if as_json:
        emit_json(done)
        return
    verb = "Created" if done.created else "Updated"
    console().print(f"{verb} member {done.member.external_id}.")


@app.command("show")
def show_member(
    ctx: typer.Context,
    external_id: Annotated[str, typer.Argument(help="the member's external id")],
    as_json: JsonOpt = False,
) -> None:
    """Show one member."""

    async def work(client: AttainClient) -> tpb.Member:
        request = tpb.GetMemberRequest(external_id=external_id)
        return (await client.targets.GetMember(request)).member

    show(run(ctx, work), as_json, COLUMNS, "Member")


@app.command("list")
def list_members(
    ctx: typer.Context,
    level: Annotated[str, typer.Option(help="only members of this level")] = "",
    group: Annotated[str, typer.Option(help="only members in this group")] = "",
    as_json: JsonOpt = False,
) -> None:
    """List members (every page)."""

    async def work(client: AttainClient) -> list[tpb.Member]:
        request = tpb.ListMembersRequest(page_size=500, level=level, group=group)
        return [m async for m in pages(client.targets.ListMembers, request, "members")]

    show(run(ctx, work), as_json, COLUMNS, "Members")


@dataclass
class ImportTally:
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[tuple[int, RowError]] = field(default_factory=list)
    fatal: AttainError | None = None

    @property
    def ok(self) -> int:
        return self.created + self.updated

    def refuse(self, line: int, errors: list[RowError]) -> None:
        self.failed += 1
        room = KEPT_ERRORS - len(self.errors)
        self.errors.extend((line, e) for e in errors[: max(room, 0)])


@app.command("import")
def import_members(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: external_id,display_name,level,groups")],
    as_json: JsonOpt = False,
) -> None:
    """Upsert every member of a CSV file. Bad rows are reported by line and column; the good
    rows are kept. Exit code 2 when any row failed."""

    async def work(client: AttainClient) -> ImportTally:
        tally = ImportTally()
        with CsvFile(file, required=["external_id"], optional=CSV_COLUMNS) as rows:
            progress = Progress(
                TextColumn("members"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[rows]} rows"),
                TimeRemainingColumn(),
                console=err_console(),
                transient=True,
            )
            with progress:
                bar = progress.add_task("import", total=rows.size or None, rows=0)
                await _upsert_all(
                    client,
                    rows,
                    tally,
                    lambda: progress.update(
                        bar, completed=rows.bytes_read, rows=tally.ok + tally.failed
                    ),
                )
        if tally.fatal is not None:
            raise tally.fatal
        return tally

    tally = run(ctx, work)
    tally.errors.sort(key=lambda e: e[0])
    if as_json:
        emit_json(
            {
                "created": tally.created,
                "updated": tally.updated,
                "failed": tally.failed,
                "errors": [
                    {"line": line, "column": e.column, "reason": e.reason}
                    for line, e in tally.errors
                ],
            }
        )
    else:
        errors = err_console()
        for line, error in tally.errors[:SHOWN_ERRORS]:
            errors.print(f"{file}: {describe(line, error)}", markup=False)
        if len(tally.errors) > SHOWN_ERRORS:
            errors.print(f"... and more: {tally.failed} rows failed in all", markup=False)
        console().print(
            f"Imported {tally.ok} members ({tally.created} new, {tally.updated} updated); "
            f"{tally.failed} rows failed."
        )
    if tally.failed:
        raise typer.Exit(2)


async def _upsert_all(
    client: AttainClient, rows: CsvFile, tally: ImportTally, advance: Callable[[], None]
) -> None:
    """UpsertMember per row with at most IN_FLIGHT calls at once; rows are read as slots free
    up, so the file is never held in memory."""
    slots = asyncio.Semaphore(IN_FLIGHT)
    running: set[asyncio.Task[None]] = set()

    async def upsert_row(row: CsvRow) -> None:
        try:
            member = _member(row)
            done = await client.targets.UpsertMember(tpb.UpsertMemberRequest(member=member))
            if done.created:
                tally.created += 1
            else:
                tally.updated += 1
        except RowError as error:
            tally.refuse(row.line, [error])
        except AttainError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                tally.refuse(row.line, _row_errors(error))
            elif tally.fatal is None:
                tally.fatal = error  # auth, unreachable server...: stop the whole import
        finally:
            slots.release()

    try:
        for row in rows:
            await slots.acquire()
            if tally.fatal is not None:
                slots.release()
                break
            task = asyncio.create_task(upsert_row(row))
            running.add(task)
            task.add_done_callback(running.discard)
            advance()
        if running:
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
    advance()


def _member(row: CsvRow) -> tpb.Member:
    groups = [g.strip() for g in row.get("groups").split(";") if g.strip()]
    return tpb.Member(
        external_id=row.require("external_id"),
        display_name=row.get("display_name"),
        level=row.get("level"),
        groups=groups,
    )


def _row_errors(error: AttainError) -> list[RowError]:
    if not error.violations:
        return [RowError("", error.message)]
    out = []
    for v in error.violations:
        column = FIELD_COLUMNS.get(v.field.split("[")[0], v.field)
        out.append(RowError(column, v.reason))
    return out


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="members")
