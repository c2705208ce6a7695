"""`attain balance` and `attain points`: a member's points, adjustments and the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from attain.v1 import rewards_pb2 as rpb
from attain_cli import bars
from attain_cli.files import short_enum
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, table
from attain_cli.runner import bad_input, run
from attain_client import AttainClient, pages

app = typer.Typer(help="Points: adjust a balance, read the ledger.", no_args_is_help=True)

MemberArg = Annotated[str, typer.Argument(help="the member's external id")]
ProgramOpt = Annotated[str, typer.Option(help="program code (default: every / the default)")]


def balance(
    ctx: typer.Context, member: MemberArg, program: ProgramOpt = "", as_json: JsonOpt = False
) -> None:
    """A member's points balance per program (the sum of the ledger's entries)."""

    async def work(client: AttainClient) -> rpb.GetBalanceResponse:
        return await client.balance(member, program)

    response = run(ctx, work)
    if as_json:
        emit_json(response)
        return
    table(
        f"Balance of {member}",
        ["Program", "Points"],
        [[b.program, f"{b.points:,}"] for b in response.balances],
    )


# Points may be negative ("-50"): an unknown "option" like that is taken as the argument.
@app.command("adjust", context_settings={"ignore_unknown_options": True})
def adjust(
    ctx: typer.Context,
    member: MemberArg,
    points: Annotated[str, typer.Argument(help="signed whole points, e.g. 500 or -50")],
    reason: Annotated[str, typer.Option(help="why (kept in the ledger)")],
    program: Annotated[str, typer.Option(help="program code (default: the default)")] = "",
    request_id: Annotated[
        str, typer.Option(help="idempotency key: the same id again changes nothing")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Write a correcting ledger entry (never an edit). Repeating with the same --request-id
    returns the first entry instead of writing another."""
    try:
        amount = int(points.strip())
    except ValueError:
        raise bad_input(
            "POINTS", f"must be a whole number like 500 or -50, not {points!r}"
        ) from None

    async def work(client: AttainClient) -> rpb.AdjustPointsResponse:
        return await client.adjust_points(
            member, amount, reason, program=program, request_id=request_id or None
        )

    response = run(ctx, work)
    if as_json:
        emit_json(response)
        return
    entry = response.entry
    console().print(
        f"{entry.points:+,} points to {entry.member_id} in {entry.program} "
        f"(entry {entry.id}: {entry.reason}). Balance: {response.balance:,}."
    )


@app.command("ledger")
def ledger(
    ctx: typer.Context, member: MemberArg, program: ProgramOpt = "", as_json: JsonOpt = False
) -> None:
    """A member's ledger entries, newest first (every page)."""
    request = rpb.ListLedgerEntriesRequest(member_id=member, program=program, page_size=200)

    async def work(client: AttainClient) -> list[rpb.LedgerEntry]:
        return [e async for e in pages(client.rewards.ListLedgerEntries, request, "entries")]

    entries = run(ctx, work)
    if as_json:
        emit_json(entries)
        return
    table(
        f"Ledger of {member}",
        ["Time", "Program", "Points", "Kind", "Reason", "Award"],
        [
            [
                bars.when(e.create_time),
                e.program,
                f"{e.points:+,}",
                short_enum(rpb.LedgerEntryKind.DESCRIPTOR, e.kind),
                e.reason,
                e.award_id,
            ]
            for e in entries
        ],
    )


def register(app_: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    app_.command("balance")(balance)
    app_.add_typer(app, name="points")
