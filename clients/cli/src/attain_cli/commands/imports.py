"""`attain imports`: the history of files the worker pulled over SFTP, most recent first."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from attain.v1 import targets_pb2 as tpb
from attain_cli.files import enum_number, short_enum
from attain_cli.options import JsonOpt
from attain_cli.output import emit_json, table
from attain_cli.runner import InputError, bad_input, run
from attain_client import AttainClient, pages, to_datetime

app = typer.Typer(help="SFTP file imports: list.", no_args_is_help=True)


@app.command("list")
def list_imports(
    ctx: typer.Context,
    state: Annotated[
        str, typer.Option(help="only imports in this state: running, done, failed")
    ] = "",
    limit: Annotated[int, typer.Option(help="at most this many (0 = all)", min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List file imports: rows read, accepted, duplicate and refused, and how long each took."""

    try:
        wanted = enum_number(tpb.ImportState.DESCRIPTOR, state, "state", "") if state else 0
    except InputError as error:
        raise bad_input(error.where, error.reason) from None

    async def work(client: AttainClient) -> list[tpb.FileImport]:
        out: list[tpb.FileImport] = []
        request = tpb.ListImportsRequest(page_size=min(limit, 500) if limit else 500)
        async for item in pages(client.targets.ListImports, request, "imports"):
            if not wanted or item.state == wanted:
                out.append(item)
                if limit and len(out) >= limit:
                    break
        return out

    imports = run(ctx, work)
    if as_json:
        emit_json(imports)
        return
    table(
        "File imports",
        [
            "file",
            "kind",
            "state",
            "read",
            "accepted",
            "duplicate",
            "refused",
            "duration",
            "started",
        ],
        [_row(i) for i in imports],
    )


def _row(i: Any) -> list[str]:
    start, finish = to_datetime(i.start_time), to_datetime(i.finish_time)
    duration = f"{(finish - start).total_seconds():.1f} s" if start and finish else ""
    state = short_enum(tpb.ImportState.DESCRIPTOR, i.state)
    if i.failure_reason:
        state += f": {i.failure_reason}"
    return [
        i.file_name,
        short_enum(tpb.FileKind.DESCRIPTOR, i.kind),
        state,
        str(i.rows_read),
        str(i.rows_accepted),
        str(i.rows_duplicate),
        str(i.rows_refused),
        duration,
        start.isoformat(timespec="seconds") if start else "",
    ]


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="imports")
