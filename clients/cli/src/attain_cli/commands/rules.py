"""`attain rules`: a target's reward rules. They are part of the target, so `add` and `remove`
read it and write back its `rules` with the etag read (a concurrent change is refused, never
lost).

A rule file is one RewardRule in YAML or JSON (same rules as target files), e.g.

    id: gold-bonus
    levels: [GOLD]
    fixed: {threshold_percent: 100, incentive: {points: 2000}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attain.v1 import targets_pb2 as tpb
from attain_cli.commands.targets import get_target, rule_text, update_target
from attain_cli.files import load_message
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, table
from attain_cli.runner import fail, run
from attain_client import AttainClient

app = typer.Typer(help="Reward rules of a target: list, add, remove.", no_args_is_help=True)

TargetArg = Annotated[str, typer.Argument(help="the target's code")]


@app.command("list")
def list_rules(ctx: typer.Context, target: TargetArg, as_json: JsonOpt = False) -> None:
    """List a target's reward rules."""

    async def work(client: AttainClient) -> tpb.Target:
        return await get_target(client, target)

    rules = list(run(ctx, work).rules)
    if as_json:
        emit_json(rules)
        return
    table(
        f"Rules of {target}",
        ["id", "rule"],
        [[r.id, rule_text(r)] for r in rules],
    )


@app.command("add")
def add(
    ctx: typer.Context,
    target: TargetArg,
    file: Annotated[Path, typer.Argument(help="one RewardRule as YAML or JSON")],
    as_json: JsonOpt = False,
) -> None:
    """Add a rule from a file. Without an id it gets the first free one of r1, r2, ..."""

    async def work(client: AttainClient) -> tuple[tpb.RewardRule, tpb.Target]:
        rule = load_message(file, tpb.RewardRule())
        current = await get_target(client, target)
        if not rule.id:
            # Positional defaults would reuse an id once a rule was removed; ids key awards.
            taken = {r.id for r in current.rules}
            rule.id = next(f"r{n}" for n in range(1, len(taken) + 2) if f"r{n}" not in taken)
        updated = await update_target(client, current, rules=[*current.rules, rule])
        return rule, updated

    rule, updated = run(ctx, work)
    if as_json:
        emit_json(updated.rules[-1])
        return
    console().print(f"Added rule {rule.id} to {target} (etag {updated.etag}).")


@app.command("remove")
def remove(
    ctx: typer.Context,
    target: TargetArg,
    rule_id: Annotated[str, typer.Argument(help="the rule's id (see `attain rules list`)")],
) -> None:
    """Remove a rule. Awards it already gave stay in the ledger."""

    async def work(client: AttainClient) -> tpb.Target | list[str]:
        current = await get_target(client, target)
        kept = [r for r in current.rules if r.id != rule_id]
        if len(kept) == len(current.rules):
            return [r.id for r in current.rules]
        return await update_target(client, current, rules=kept)

    result = run(ctx, work)
    if isinstance(result, list):
        raise fail(
            f"rule_id: {target} has no rule {rule_id!r}; its rules are "
            f"{', '.join(result) or 'none'}",
            1,
        )
    console().print(f"Removed rule {rule_id} from {target} (etag {result.etag}).")


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="rules")
