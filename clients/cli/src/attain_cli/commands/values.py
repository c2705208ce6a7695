"""`attain values`: target values, most specific first: per member for a cycle, per level, or
the target's default (SPEC section 5).

`values import` reads the SFTP target-file format, a CSV with a header row:

    member_id,target_code,cycle,target_value
    M-001,NOV-SALES,2026-11,12000

(`target_code` may be left out with --target; an optional `criterion_id` column names the
criterion, the first one otherwise). The file is stored as one unit: every row, or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import grpc
import typer

from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_cli.commands.targets import get_target, update_target
from attain_cli.files import DECIMAL_RE, CsvFile, RowError, describe
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, err_console, show
from attain_cli.runner import InputError, bad_input, run
from attain_client import AttainClient, AttainError, pages

app = typer.Typer(help="Target values: set one, import a CSV, list.", no_args_is_help=True)

TargetArg = Annotated[str, typer.Argument(help="the target's code")]
MAX_VALUES = 10_000  # SetTargetValues takes at most this many per (all-or-nothing) call
SHOWN_ERRORS = 200
VALUE_COLUMNS = {
    "member_id": "member_id",
    "target_code": "target_code",
    "cycle": "cycle",
    "value": "target_value",
    "criterion_id": "criterion_id",
}


@app.command("set")
def set_value(
    ctx: typer.Context,
    target: TargetArg,
    value: Annotated[str, typer.Option(help="the target value, e.g. 12000.50")],
    member: Annotated[str, typer.Option(help="for this member (per cycle)")] = "",
    cycle: Annotated[
        str, typer.Option(help="cycle name, e.g. 2026-11 (default: the open one)")
    ] = "",
    level: Annotated[str, typer.Option(help="for every member of this level")] = "",
    criterion: Annotated[str, typer.Option(help="criterion id (default: the first)")] = "",
) -> None:
    """Set a member's value for a cycle (--member), a level's value (--level), or the target's
    default value (neither)."""
    if not DECIMAL_RE.match(value.strip()):
        raise bad_input("value", f"{value!r} is not a decimal number such as 12000.50")
    if member and level:
        raise bad_input("level", "give --member or --level, not both")
    if cycle and not member:
        raise bad_input("cycle", "only a member's value is per cycle; add --member")
    exact = value.strip().removeprefix("+")

    async def work(client: AttainClient) -> str:
        if member:
            name = cycle or await _open_cycle(client, target)
            entry = tpb.TargetValue(
                member_id=member,
                target_code=target,
                cycle=name,
                criterion_id=criterion,
                value=typ.Decimal(value=exact),
            )
            done = await client.targets.SetTargetValues(tpb.SetTargetValuesRequest(values=[entry]))
            state = "set" if done.written else "unchanged"
            return f"{target} {name}: {member} {state} to {exact}."
        return await _set_on_target(client, target, criterion, level, exact)

    console().print(run(ctx, work), markup=False)


async def _open_cycle(client: AttainClient, target: str) -> str:
    request = tpb.ListCyclesRequest(target_code=target, page_size=5)
    for c in (await client.targets.ListCycles(request)).cycles:
        if c.state == typ.CYCLE_STATE_OPEN:
            return str(c.name)
    raise InputError("cycle", f"{target} has no open cycle now; give --cycle")


async def _set_on_target(
    client: AttainClient, target: str, criterion: str, level: str, value: str
) -> str:
    """A level's value or the default lives on the target's criterion: an etag-checked update."""
    current = await get_target(client, target)
    ids = [c.id for c in current.criteria]
    if criterion and criterion not in ids:
        raise InputError("criterion", f"{target} has no criterion {criterion!r}; it has {ids}")
    criteria = list(current.criteria)
    chosen = criteria[ids.index(criterion)] if criterion else criteria[0]
    if level:
        chosen.level_target_values[level].value = value
    else:
        chosen.target_value.value = value
    updated = await update_target(client, current, criteria=criteria)
    whom = f"level {level}" if level else "default"
    return f"{target} {chosen.id}: {whom} value set to {value} (etag {updated.etag})."


@dataclass
class ValuesFile:
    values: list[tpb.TargetValue] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    errors: list[tuple[int, RowError]] = field(default_factory=list)
    written: int = 0
    unchanged: int = 0


@app.command("import")
def import_values(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: member_id,target_code,cycle,target_value")],
    target: Annotated[str, typer.Option(help="target code for rows without one")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Set per-member cycle values from a CSV file, all rows or none (at most 10,000)."""

    async def work(client: AttainClient) -> ValuesFile:
        read = _read_values(file, target)
        if read.errors:
            return read
        try:
            done = await client.targets.SetTargetValues(
                tpb.SetTargetValuesRequest(values=read.values)
            )
        except AttainError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT or not error.violations:
                raise
            read.errors = [_located(read.lines, v.field, v.reason) for v in error.violations]
            return read
        read.written, read.unchanged = done.written, done.unchanged
        return read

    result = run(ctx, work)
    if result.errors:
        result.errors.sort(key=lambda e: e[0])
        errors = err_console()
        for line, error in result.errors[:SHOWN_ERRORS]:
            errors.print(
                f"{file}: {describe(line, error)}" if line else f"{file}: {error}", markup=False
            )
        if len(result.errors) > SHOWN_ERRORS:
            errors.print(f"... and {len(result.errors) - SHOWN_ERRORS} more", markup=False)
        errors.print("Nothing was stored (a values file is all or nothing).", markup=False)
        raise typer.Exit(2)
    if as_json:
        emit_json({"written": result.written, "unchanged": result.unchanged})
        return
    console().print(
        f"Stored {len(result.values)} values: {result.written} written, "
        f"{result.unchanged} unchanged."
    )


def _read_values(file: Path, target: str) -> ValuesFile:
    out = ValuesFile()
    with CsvFile(
        file,
        required=["member_id", "cycle", "target_value"],
        optional=["target_code", "criterion_id"],
    ) as rows:
        for row in rows:
            if len(out.lines) >= MAX_VALUES:
                raise InputError(
                    f"{file}, line {row.line}",
                    f"more than {MAX_VALUES:,} values; split the file (each is stored as one unit)",
                )
            out.lines.append(row.line)
            try:
                code = row.get("target_code") or target
                if not code:
                    raise RowError("target_code", "is empty (or pass --target)")
                value = tpb.TargetValue(
                    member_id=row.require("member_id"),
                    target_code=code,
                    cycle=row.require("cycle"),
                    criterion_id=row.get("criterion_id"),
                    value=typ.Decimal(value=row.decimal("target_value")),
                )
            except RowError as error:
                out.errors.append((row.line, error))
                continue
            out.values.append(value)
    if not out.lines and not out.errors:
        raise InputError(str(file), "has no rows")
    return out


def _located(lines: list[int], field_path: str, reason: str) -> tuple[int, RowError]:
    """values[3].value -> (the line of the 4th row, column target_value)."""
    head, _, rest = field_path.partition("].")
    if head.startswith("values[") and head[7:].isdigit() and int(head[7:]) < len(lines):
        return lines[int(head[7:])], RowError(VALUE_COLUMNS.get(rest, rest), reason)
    return 0, RowError(field_path, reason)


@app.command("list")
def list_values(
    ctx: typer.Context,
    target: TargetArg,
    cycle: Annotated[str, typer.Option(help="only this cycle, e.g. 2026-11")] = "",
    as_json: JsonOpt = False,
) -> None:
    """List the per-member values of a target (every cycle, or one)."""

    async def work(client: AttainClient) -> list[tpb.TargetValue]:
        request = tpb.ListTargetValuesRequest(target_code=target, cycle=cycle, page_size=1000)
        return [v async for v in pages(client.targets.ListTargetValues, request, "values")]

    show(
        run(ctx, work),
        as_json,
        ["member_id", "cycle", "criterion_id", "value"],
        f"Target values of {target}",
    )


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="values")
