"""`attain programs`: the brand's loyalty programs (each a points ledger; one is the default)."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import targets_pb2 as tpb
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, show
from attain_cli.runner import bad_input, run
from attain_client import AttainClient, pages

app = typer.Typer(
    help="Loyalty programs: create, list, show, update (name, default).", no_args_is_help=True
)

COLUMNS = ["code", "display_name", "is_default", "create_time"]
CodeArg = Annotated[str, typer.Argument(help="program code, e.g. STARS")]


@app.command("create")
def create(
    ctx: typer.Context,
    code: CodeArg,
    name: Annotated[str, typer.Option(help="display name (default: the code)")] = "",
    default: Annotated[
        bool, typer.Option("--default", help="make it the brand's default program")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a program. Rules that name no program award into the default one."""

    async def work(client: AttainClient) -> tpb.Program:
        program = tpb.Program(code=code, display_name=name, is_default=default)
        return (
            await client.targets.CreateProgram(tpb.CreateProgramRequest(program=program))
        ).program

    program = run(ctx, work)
    if as_json:
        emit_json(program)
        return
    default_note = " (the default)" if program.is_default else ""
    console().print(f"Created program {program.code}{default_note}.")


@app.command("list")
def list_programs(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the brand's programs."""

    async def work(client: AttainClient) -> list[tpb.Program]:
        call = client.targets.ListPrograms
        return [p async for p in pages(call, tpb.ListProgramsRequest(), "programs")]

    show(run(ctx, work), as_json, COLUMNS, "Programs")


@app.command("show")
def show_program(ctx: typer.Context, code: CodeArg, as_json: JsonOpt = False) -> None:
    """Show one program."""

    async def work(client: AttainClient) -> tpb.Program:
        return (await client.targets.GetProgram(tpb.GetProgramRequest(code=code))).program

    show(run(ctx, work), as_json, COLUMNS, "Program")


@app.command("update")
def update(
    ctx: typer.Context,
    code: CodeArg,
    name: Annotated[str | None, typer.Option(help="new display name")] = None,
    default: Annotated[
        bool, typer.Option("--default", help="make it the default (the old default stops being)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rename a program or make it the brand's default."""
    paths = (["display_name"] if name is not None else []) + (["is_default"] if default else [])
    if not paths:
        raise bad_input("update", "give --name, --default or both")

    async def work(client: AttainClient) -> tpb.Program:
        program = tpb.Program(code=code, display_name=name or "", is_default=default)
        request = tpb.UpdateProgramRequest(program=program, update_mask=FieldMask(paths=paths))
        return (await client.targets.UpdateProgram(request)).program

    program = run(ctx, work)
    if as_json:
        emit_json(program)
        return
    default_note = ", the default" if program.is_default else ""
    console().print(f"Updated program {program.code} ({program.display_name}{default_note}).")


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="programs")
