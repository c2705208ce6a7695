"""Progress for people: bars and percents in the colour the server chose (SPEC section 8).

The server decides the colour (`Progress.colour`) and the displayed percent
(`attainment_display`, rounded down); nothing here compares attainment with thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from attain.v1 import progress_pb2 as ppb
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import types_pb2 as typ
from attain_cli.files import short_enum
from attain_client import to_datetime, to_decimal

BAR_WIDTH = 15
NONE = "—"
# Light tables: a rule under the header, two spaces between columns, so a card fits 100 columns.
STYLE: dict[str, Any] = {
    "box": box.SIMPLE_HEAD,
    "show_edge": False,
    "pad_edge": False,
    "padding": (0, 1, 0, 0),
}


def colour_style(colour: int, console: Console) -> str:
    """The Rich style of a server colour. Orange is a 256-colour shade; a 16-colour terminal has
    no orange, so it gets yellow there (Rich would map dark_orange to bright red, which reads
    as red)."""
    if colour == typ.COLOUR_RED:
        return "red"
    if colour == typ.COLOUR_ORANGE:
        return "dark_orange" if console.color_system in ("256", "truecolor") else "yellow"
    if colour == typ.COLOUR_GREEN:
        return "green"
    return ""


def figure(value: typ.Decimal | Decimal | None) -> str:
    """An exact decimal with thousands separators, as given ("10,000.00", "3")."""
    exact = to_decimal(value) if isinstance(value, typ.Decimal) else value
    return NONE if exact is None else f"{exact:,}"


def when(ts: Timestamp) -> str:
    """An instant in ISO 8601 to the second (UTC), or nothing when unset."""
    instant = to_datetime(ts)
    return instant.isoformat(timespec="seconds") if instant else ""


def percent(p: ppb.Progress, console: Console) -> Text:
    return Text(f"{p.attainment_display or '0.00'}%", style=colour_style(p.colour, console))


def bar(p: ppb.Progress, console: Console, width: int = BAR_WIDTH) -> Text:
    """A bar filled by attainment (capped at full), coloured by the server's colour."""
    attainment = to_decimal(p.attainment_percent) or Decimal(0)
    filled = int(min(max(attainment, Decimal(0)), Decimal(100)) * width / 100)
    out = Text()
    out.append("█" * filled, style=colour_style(p.colour, console))
    out.append("░" * (width - filled), style="dim")
    return out


def achieved(p: ppb.Progress) -> str:
    """Achieved / target, one line per criterion when there are several."""
    if len(p.criteria) <= 1:
        return f"{figure(p.achieved_value)} / {figure(p.target_value)}"
    return "\n".join(criterion(c) for c in p.criteria)


def criterion(c: ppb.CriterionProgress) -> str:
    """One criterion's achieved / target and its KPI ("4,000.00 / 10,000.00 SKU_AMOUNT")."""
    kpi = short_enum(typ.Kpi.DESCRIPTOR, c.kpi)
    return f"{figure(c.achieved_value)} / {figure(c.target_value)} {kpi}"


def cycle(p: ppb.Progress) -> str:
    state = short_enum(typ.CycleState.DESCRIPTOR, p.cycle_state)
    return p.cycle if state in ("OPEN", "UNSPECIFIED") else f"{p.cycle} ({state})"


def next_milestone(p: ppb.Progress) -> str:
    if not p.HasField("next_milestone"):
        return NONE
    return f"{figure(p.next_milestone.attainment_percent)}%"


def reward(a: rpb.Award) -> str:
    """What an award gives: "1,000 points", "voucher NOV-10 (code)", "badge Oil champion"."""
    if a.kind == rpb.AWARD_KIND_POINTS:
        return f"{a.points:,} points"
    if a.kind == rpb.AWARD_KIND_VOUCHER:
        return f"voucher {a.voucher_pool} {a.voucher_code or '(pending)'}".rstrip()
    if a.kind == rpb.AWARD_KIND_BADGE:
        return f"badge {a.badge}"
    return rpb.AwardKind.Name(a.kind)


def awards_summary(awards: Sequence[rpb.Award]) -> str:
    granted = [a for a in awards if a.state != rpb.AWARD_STATE_REVERSED]
    if not granted:
        return NONE
    points = sum(a.points for a in granted if a.kind == rpb.AWARD_KIND_POINTS)
    parts = [f"{points:,} points"] if points else []
    parts += [reward(a) for a in granted if a.kind != rpb.AWARD_KIND_POINTS]
    return ", ".join(parts)


def milestone(a: rpb.Award) -> str:
    """The attainment an award was given at ("100%"), or "" when it has none."""
    return f"{figure(a.milestone_percent)}%" if a.HasField("milestone_percent") else ""


def award_line(a: rpb.Award) -> str:
    """One award on one line, for people: who, what, for which target and threshold."""
    at = f" at {milestone(a)}" if a.HasField("milestone_percent") else ""
    state = short_enum(rpb.AwardState.DESCRIPTOR, a.state)
    return (
        f"{when(a.create_time)} {a.member_id}: {reward(a)} "
        f"for {a.target_code} {a.cycle} (rule {a.rule_id}{at}) {state}"
    ).strip()


def card(rows: Sequence[ppb.Progress], console: Console, title: str = "") -> Text:
    """A member's card: per target, a line with the bar and figures, and a line with what
    remains, the days left, the pace needed per day, the next milestone and the awards."""
    out = Text()
    if title:
        out.append(title + "\n", style="bold")
    name_width = max((len(p.target_code) for p in rows), default=0)
    cycle_width = max((len(cycle(p)) for p in rows), default=0)
    indent = " " * (name_width + 2)
    for p in rows:
        out.append(f"{p.target_code:<{name_width}}  {cycle(p):<{cycle_width}}  ")
        out.append_text(bar(p, console))
        percent_text = percent(p, console)
        out.append(" " * (9 - len(percent_text.plain)))
        out.append_text(percent_text)
        out.append(f"  {figure(p.achieved_value)} / {figure(p.target_value)}\n")
        if p.complete:
            details = ["target reached"]
        else:
            details = [
                f"remaining {figure(p.remaining_value)}",
                f"{figure(p.daily_pace_needed)} per day needed",
            ]
        details.append(f"{p.days_left} days left")
        if p.HasField("next_milestone"):
            details.append(f"next milestone {next_milestone(p)}")
        if p.awards:
            details.append(f"awards {awards_summary(p.awards)}")
        if len(p.criteria) > 1:
            details.append("criteria " + "; ".join(criterion(c) for c in p.criteria))
        out.append(indent + " · ".join(details) + "\n", style="")
    out.rstrip()
    return out


def progress_table(rows: Sequence[ppb.Progress], console: Console, title: str = "") -> Table:
    """Several members' rows in one table (rows grouped by member), for an overview."""
    table = Table(title=title or None, title_justify="left", **STYLE)
    for name, justify in (
        ("Member", "left"),
        ("Target", "left"),
        ("Progress", "left"),
        ("%", "right"),
        ("Achieved / target", "right"),
        ("Remaining", "right"),
        ("Days left", "right"),
        ("Awards", "left"),
    ):
        table.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=name not in ("Awards", "Days left"),
            # The percent must never be cut ("104.0…"): other columns give way first.
            min_width={"Progress": BAR_WIDTH, "%": len("100.00%")}.get(name),
            max_width=5 if name == "Days left" else None,
        )
    previous = ""
    for p in rows:
        if previous and p.member_id != previous:
            table.add_section()
        table.add_row(
            p.member_id if p.member_id != previous else "",
            p.target_code,
            bar(p, console),
            percent(p, console),
            achieved(p),
            figure(p.remaining_value),
            str(p.days_left),
            awards_summary(p.awards),
        )
        previous = p.member_id
    return table


def leaderboard_table(entries: Sequence[ppb.RankedProgress], console: Console, title: str) -> Table:
    table = Table(title=title, title_justify="left", **STYLE)
    table.add_column("Rank", justify="right")
    table.add_column("Member", no_wrap=True)
    table.add_column("Level")
    table.add_column("Progress", no_wrap=True, min_width=BAR_WIDTH)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("Achieved / target", justify="right", no_wrap=True)
    table.add_column("Remaining", justify="right", no_wrap=True)
    for entry in entries:
        p = entry.progress
        table.add_row(
            str(entry.rank),
            p.member_id,
            p.level,
            bar(p, console),
            percent(p, console),
            achieved(p),
            figure(p.remaining_value),
        )
    return table


def progress_line(p: ppb.Progress, console: Console) -> Text:
    """One progress row on one line, for logs and pipes (`attain watch` outside a terminal)."""
    out = Text(f"{when(p.update_time)} ".lstrip())
    out.append(f"{p.member_id} {p.target_code} {p.cycle} ")
    out.append_text(bar(p, console))
    out.append(" ")
    out.append_text(percent(p, console))
    out.append(f" {achieved(p)}  remaining {figure(p.remaining_value)}  {p.days_left} days left")
    return out
