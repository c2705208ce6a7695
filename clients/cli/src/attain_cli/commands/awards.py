"""`attain awards`: awards given to members, followed live from a cursor, and badges held."""

from __future__ import annotations

import sys
from contextlib import aclosing
from typing import Annotated

import typer

from attain.v1 import rewards_pb2 as rpb
from attain_cli import bars
from attain_cli.files import short_enum
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, table
from attain_cli.runner import bad_input, run
from attain_client import AttainClient, pages

app = typer.Typer(help="Awards: list them, follow them live, badges.", no_args_is_help=True)

KINDS = {
    "points": rpb.AWARD_KIND_POINTS,
    "voucher": rpb.AWARD_KIND_VOUCHER,
    "badge": rpb.AWARD_KIND_BADGE,
}


@app.command("list")
def list_awards(
    ctx: typer.Context,
    member: Annotated[str, typer.Option(help="only this member")] = "",
    target: Annotated[str, typer.Option(help="only this target")] = "",
    cycle: Annotated[str, typer.Option(help="only this cycle, e.g. 2026-11")] = "",
    kind: Annotated[str, typer.Option(help="only points, voucher or badge")] = "",
    as_json: JsonOpt = False,
) -> None:
    """List awards (every page), oldest first."""
    if kind and kind not in KINDS:
        raise bad_input("--kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    request = rpb.ListAwardsRequest(
        member_id=member,
        target_code=target,
        cycle=cycle,
        kind=KINDS.get(kind, rpb.AWARD_KIND_UNSPECIFIED),
        page_size=200,
    )

    async def work(client: AttainClient) -> list[rpb.Award]:
        return [a async for a in pages(client.rewards.ListAwards, request, "awards")]

    awards = run(ctx, work)
    if as_json:
        emit_json(awards)
        return
    table(
        "Awards",
        ["Time", "Member", "Target", "Cycle", "Rule", "At", "Reward", "State"],
        [
            [
                bars.when(a.create_time),
                a.member_id,
                a.target_code,
                a.cycle,
                a.rule_id,
                bars.milestone(a),
                bars.reward(a),
                short_enum(rpb.AwardState.DESCRIPTOR, a.state),
            ]
            for a in awards
        ],
    )


@app.command("watch")
def watch_awards(
    ctx: typer.Context,
    cursor: Annotated[str, typer.Option(help="resume after this award's cursor")] = "",
    member: Annotated[str, typer.Option(help="only this member")] = "",
    count: Annotated[int, typer.Option(min=0, help="stop after N awards (0 = until Ctrl-C)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Print the brand's awards after --cursor (all from the start by default), then new ones
    as they are given. Each line ends with the award's cursor: pass it to resume."""
    out = console()

    async def work(client: AttainClient) -> None:
        seen = 0
        async with aclosing(client.watch_awards(cursor, member)) as stream:
            async for award in stream:
                seen += 1
                if as_json:
                    emit_json(award, indent=None)  # one object per line
                else:
                    out.print(f"{bars.award_line(award)}  cursor {award.cursor}")
                sys.stdout.flush()
                if count and seen >= count:
                    return

    run(ctx, work)


@app.command("badges")
def badges(
    ctx: typer.Context,
    member: Annotated[str, typer.Argument(help="the member's external id")],
    as_json: JsonOpt = False,
) -> None:
    """Badges a member holds."""
    request = rpb.ListBadgesRequest(member_id=member, page_size=200)

    async def work(client: AttainClient) -> list[rpb.BadgeGrant]:
        return [b async for b in pages(client.rewards.ListBadges, request, "badges")]

    grants = run(ctx, work)
    if as_json:
        emit_json(grants)
        return
    table(
        f"Badges of {member}",
        ["Badge", "Target", "Cycle", "Rule", "Granted"],
        [[b.badge, b.target_code, b.cycle, b.rule_id, bars.when(b.grant_time)] for b in grants],
    )


def register(app_: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    app_.add_typer(app, name="awards")
