"""`attain targets`: targets (missions) from a YAML or JSON file; list, show, archive.

The file is one Target message with the proto field names (snake_case or lowerCamelCase).
Decimals may be written as strings or numbers and stay exact; enums take their full or short
names. For example:

    code: NOV-SALES
    display_name: November sales
    criteria:
      - kpi: TRANSACTION_AMOUNT
        target_value: 10000.00
        level_target_values: {GOLD: 20000}
    period: {kind: MONTHLY, start_date: "2026-01-01"}
    offset_days: 3
    rules:
      - fixed: {threshold_percent: 100, incentive: {points: 1000}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_cli.files import load_message, short_enum
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, table
from attain_cli.runner import run
from attain_client import AttainClient, pages

app = typer.Typer(
    help="Targets: create from a YAML/JSON file, list, show, archive.", no_args_is_help=True
)

CodeArg = Annotated[str, typer.Argument(help="the target's code, e.g. NOV-SALES")]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the target as YAML (.yaml/.yml) or JSON (.json)")],
    as_json: JsonOpt = False,
) -> None:
    """Create a target from a file (see `docs/cli.md` for the format)."""

    async def work(client: AttainClient) -> tpb.Target:
        target = load_message(file, tpb.Target())
        return (await client.targets.CreateTarget(tpb.CreateTargetRequest(target=target))).target

    target = run(ctx, work)
    if as_json:
        emit_json(target)
        return
    console().print(f"Created target {target.code} (etag {target.etag}).")
    print_target(target)


@app.command("list")
def list_targets(
    ctx: typer.Context,
    archived: Annotated[bool, typer.Option("--archived", help="include archived targets")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the brand's targets (active ones, or all with --archived)."""

    async def work(client: AttainClient) -> list[tpb.Target]:
        request = tpb.ListTargetsRequest(page_size=200, show_archived=archived)
        return [t async for t in pages(client.targets.ListTargets, request, "targets")]

    targets = run(ctx, work)
    if as_json:
        emit_json(targets)
        return
    table(
        "Targets",
        ["code", "name", "state", "criteria", "period", "rules"],
        [
            [
                t.code,
                t.display_name,
                short_enum(tpb.TargetState.DESCRIPTOR, t.state),
                ", ".join(criterion_text(c) for c in t.criteria),
                period_text(t.period),
                str(len(t.rules)),
            ]
            for t in targets
        ],
    )


@app.command("show")
def show_target(ctx: typer.Context, code: CodeArg, as_json: JsonOpt = False) -> None:
    """Show a target: criteria with their values, period, audience and rules."""

    async def work(client: AttainClient) -> tpb.Target:
        return await get_target(client, code)

    target = run(ctx, work)
    if as_json:
        emit_json(target)
        return
    print_target(target)


@app.command("archive")
def archive(ctx: typer.Context, code: CodeArg, as_json: JsonOpt = False) -> None:
    """Archive a target: no new cycles open; its data stays readable."""

    async def work(client: AttainClient) -> tpb.Target:
        return (await client.targets.ArchiveTarget(tpb.ArchiveTargetRequest(code=code))).target

    target = run(ctx, work)
    if as_json:
        emit_json(target)
        return
    console().print(f"Archived target {target.code}.")


# ---------------------------------------------------------------- reading and updating


async def get_target(client: AttainClient, code: str) -> tpb.Target:
    return (await client.targets.GetTarget(tpb.GetTargetRequest(code=code))).target


async def update_target(client: AttainClient, current: tpb.Target, **fields: Any) -> tpb.Target:
    """Writes `fields` (e.g. `rules=[...]`) over the target as read in `current`, checked
    against its etag: a concurrent change is refused, never lost."""
    patch = tpb.Target(code=current.code, etag=current.etag, **fields)
    request = tpb.UpdateTargetRequest(target=patch, update_mask=FieldMask(paths=list(fields)))
    return (await client.targets.UpdateTarget(request)).target


# ---------------------------------------------------------------- readable summaries


def print_target(t: Any) -> None:
    out = console()
    state = short_enum(tpb.TargetState.DESCRIPTOR, t.state)
    out.print(f"{t.code}: {t.display_name or '(no name)'} [{state}, etag {t.etag}]", markup=False)
    if t.description:
        out.print(f"  {t.description}", markup=False)
    out.print(f"Period: {period_text(t.period)}, offset {t.offset_days} days", markup=False)
    out.print(f"Audience: {audience_text(t.audience)}", markup=False)
    out.print("Criteria:")
    for c in t.criteria:
        out.print(f"  {c.id}: {criterion_text(c)}{filter_text(c.filter)}", markup=False)
    out.print("Rules:" if t.rules else "Rules: none")
    for r in t.rules:
        out.print(f"  {r.id}: {rule_text(r)}", markup=False)


def criterion_text(c: Any) -> str:
    text = f"{short_enum(typ.Kpi.DESCRIPTOR, c.kpi)} {c.target_value.value}"
    if c.level_target_values:
        levels = ", ".join(f"{k} {v.value}" for k, v in sorted(c.level_target_values.items()))
        text += f" ({levels})"
    return text


def filter_text(f: Any) -> str:
    parts = [
        f"{name} {', '.join(getattr(f, name))}"
        for name in ("skus", "categories", "stores")
        if getattr(f, name)
    ]
    if f.min_transaction_amount.value:
        parts.append(f"min amount {f.min_transaction_amount.value} per transaction")
    if f.min_transaction_quantity.value:
        parts.append(f"min quantity {f.min_transaction_quantity.value} per transaction")
    return f"; {'; '.join(parts)}" if parts else ""


def period_text(p: Any) -> str:
    kind = short_enum(typ.PeriodKind.DESCRIPTOR, p.kind)
    text = f"{kind} from {p.start_date}"
    if p.end_date:
        text += f" to {p.end_date}"
    if p.every_n_days:
        text += f", every {p.every_n_days} days"
    return text


def audience_text(a: Any) -> str:
    if a.kind == tpb.AUDIENCE_KIND_GROUPS:
        return f"groups {', '.join(a.groups)}"
    if a.kind == tpb.AUDIENCE_KIND_MEMBERS:
        return f"members {', '.join(a.member_ids)}"
    return "all members"


def incentive_text(i: Any) -> str:
    which = i.WhichOneof("incentive")
    if which == "points":
        return f"{i.points} points"
    if which == "voucher_pool":
        return f"a voucher from pool {i.voucher_pool}"
    if which == "badge":
        return f"badge {i.badge}"
    return "nothing"


def rule_text(r: Any) -> str:
    kind = r.WhichOneof("kind")
    if kind == "fixed":
        threshold = r.fixed.threshold_percent.value or "100"
        text = f"FIXED {incentive_text(r.fixed.incentive)} at {threshold}%"
    elif kind == "percentage":
        text = f"PERCENTAGE {r.percentage.percent.value}% of the achievement value"
    elif kind == "per_x":
        text = f"PER_X {r.per_x.points} points per {r.per_x.every.value}"
    elif kind == "milestones":
        steps = "; ".join(
            f"{m.attainment_percent.value}% -> {incentive_text(m.incentive)}"
            for m in r.milestones.milestones
        )
        text = f"MILESTONES {steps}"
    else:
        text = "no kind"
    extras = [f"program {r.program}" if r.program else "default program"]
    if r.min_attainment_percent.value and r.min_attainment_percent.value != "0":
        extras.append(f"min attainment {r.min_attainment_percent.value}%")
    if r.HasField("cap_points"):
        extras.append(f"cap {r.cap_points} points")
    if r.levels:
        extras.append(f"levels {', '.join(r.levels)}")
    if r.reversal_policy == tpb.REVERSAL_POLICY_REVERSE_AT_CLOSE:
        extras.append("reversed at close if lost")
    if r.rounding not in (tpb.ROUNDING_UNSPECIFIED, tpb.ROUNDING_DOWN):
        extras.append(f"rounding {short_enum(tpb.Rounding.DESCRIPTOR, r.rounding)}")
    return f"{text} ({'; '.join(extras)})"


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="targets")
