"""`attain progress`, `attain leaderboard`, `attain watch`: members' standing as coloured bars."""

from __future__ import annotations

import sys
from contextlib import aclosing
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from attain.v1 import progress_pb2 as ppb
from attain_cli import bars
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json
from attain_cli.runner import bad_input, run
from attain_client import AttainClient

TargetOpt = Annotated[str, typer.Option("--target", help="only this target (its code)")]
CycleOpt = Annotated[
    str, typer.Option("--cycle", help="cycle name, e.g. 2026-11 or 2026-Q4 (default: current)")
]


def show_progress(
    ctx: typer.Context,
    member: Annotated[str, typer.Argument(help="the member's external id")],
    target: TargetOpt = "",
    cycle: CycleOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """A member's card: each target's bar (red < 90%, orange < 100%, green), percent, what
    remains, days left and the pace needed per day."""
    if cycle and not target:
        raise bad_input("--cycle", "needs --target (a cycle belongs to one target)")

    async def work(client: AttainClient) -> list[ppb.Progress]:
        if target:
            return [await client.get_progress(member, target, cycle)]
        return await client.member_progress(member)

    rows = run(ctx, work)
    if as_json:
        emit_json(rows)
        return
    out = console()
    if not rows:
        out.print(f"{member} has no targets running now.")
        return
    out.print(bars.card(rows, out, title=f"Progress of {member}"))


def leaderboard(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="the target's code")],
    cycle: CycleOpt = "",
    limit: Annotated[int, typer.Option(min=0, help="show only the first N (0 = all)")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """A target's cycle ranked by attainment (equal attainment shares a rank)."""

    async def work(client: AttainClient) -> list[ppb.RankedProgress]:
        out: list[ppb.RankedProgress] = []
        size = min(limit, 100) if limit else 100
        async with aclosing(client.leaderboard(target, cycle, page_size=size)) as entries:
            async for entry in entries:
                out.append(entry)
                if limit and len(out) >= limit:
                    break
        return out

    entries = run(ctx, work)
    if as_json:
        emit_json(entries)
        return
    out = console()
    if not entries:
        out.print(f"Nobody has progress on {target} in this cycle yet.")
        return
    name = entries[0].progress.cycle
    out.print(bars.leaderboard_table(entries, out, f"Leaderboard of {target}, {name}"))


def watch(
    ctx: typer.Context,
    member: Annotated[str, typer.Argument(help="the member's external id")],
    target: TargetOpt = "",
    updates: Annotated[
        int,
        typer.Option(
            min=0,
            help="stop after N updates (0 = until Ctrl-C); the first are the rows as they are "
            "now, one per target",
        ),
    ] = 0,
) -> None:
    """Follow a member's progress live: the card is redrawn on every change. Outside a
    terminal (a pipe, a log) each update is printed as one line instead."""
    out = console()

    async def work(client: AttainClient) -> int:
        latest: dict[tuple[str, str], ppb.Progress] = {}
        seen = 0

        def card() -> Text:
            rows = [latest[k] for k in sorted(latest)]
            return bars.card(rows, out, title=f"Progress of {member} (live; Ctrl-C to stop)")

        # Live crops lines a soft-wrapping console leaves long: give it one that wraps.
        screen = Console(highlight=False, file=sys.stdout)
        live = Live(console=screen, auto_refresh=False) if out.is_terminal else None
        if live is not None:
            live.start()
        try:
            async with aclosing(client.watch_progress(member, target)) as stream:
                async for progress in stream:
                    seen += 1
                    latest[(progress.target_code, progress.cycle)] = progress
                    if live is not None:
                        live.update(card(), refresh=True)
                    else:
                        out.print(bars.progress_line(progress, out))
                        sys.stdout.flush()
                    if updates and seen >= updates:
                        break
        finally:
            if live is not None:
                live.stop()
        return seen

    run(ctx, work)


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    app.command("progress")(show_progress)
    app.command("leaderboard")(leaderboard)
    app.command("watch")(watch)
