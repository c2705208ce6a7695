"""How a member stands on a target: attainment percent, colour, remaining and pace (SPEC 2, 8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from attain_server.domain.decimals import (
    EXACT,
    HUNDRED,
    PERCENT,
    ZERO,
    format_decimal,
    normalize,
    quantize_down,
)
from attain_server.domain.model import Kpi

ORANGE_FROM = Decimal(90)
GREEN_FROM = HUNDRED


class Colour(StrEnum):
    RED = "RED"
    ORANGE = "ORANGE"
    GREEN = "GREEN"


def _require_positive(target: Decimal) -> None:
    if not target > 0:
        raise ValueError(f"target value must be > 0, got {target}")


def attainment_percent(achieved: Decimal, target: Decimal) -> Decimal:
    """achieved / target * 100 to 40 significant digits, cut, without exponent notation."""
    _require_positive(target)
    # Dividing first and shifting by two places after keeps the one rounding in the division.
    return normalize(PERCENT.scaleb(PERCENT.divide(achieved, target), 2))


def reaches(achieved: Decimal, target: Decimal, percent: Decimal) -> bool:
    """Exactly whether achieved / target >= percent / 100 (cross-multiplied, never divided)."""
    _require_positive(target)
    return EXACT.multiply(achieved, HUNDRED) >= EXACT.multiply(percent, target)


def colour(achieved: Decimal, target: Decimal) -> Colour:
    """RED below 90%, ORANGE from 90% to below 100%, GREEN from 100%, decided exactly."""
    return _colour(achieved, target, reaches(achieved, target, GREEN_FROM))


def _colour(achieved: Decimal, target: Decimal, green: bool) -> Colour:
    """`colour` once whether it is GREEN is known."""
    if green:
        return Colour.GREEN
    if reaches(achieved, target, ORANGE_FROM):
        return Colour.ORANGE
    return Colour.RED


def display_percent(percent: Decimal) -> str:
    """Two decimals, cut: 89.999 -> "89.99", 102 -> "102.00"."""
    shown = quantize_down(percent, 2)
    # Cutting a tiny negative leaves "-0.00"; a percentage is never shown with a bare minus.
    return format_decimal(shown.copy_abs() if shown == 0 else shown)


def remaining(achieved: Decimal, target: Decimal) -> Decimal:
    """What is still missing to reach the target; 0 once reached."""
    missing = EXACT.subtract(target, achieved)
    return missing if missing > 0 else ZERO


def daily_pace(remaining: Decimal, days_left: int) -> Decimal:
    """What is needed per day to reach the target in ``days_left`` days.

    Exact at the scale of ``remaining`` when that divides evenly (500 / 10 -> 50, 500.00 / 10 ->
    50.00); otherwise rounded up to two decimals (500 / 3 -> 166.67), because a pace rounded
    down would leave the member short on the last day.
    """
    exponent = remaining.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"remaining must be a finite decimal, got {remaining}")
    if remaining <= 0:
        return ZERO
    if days_left <= 0:
        return remaining
    scale = max(-exponent, 0)
    units = int(EXACT.scaleb(remaining, scale))  # an integer count of 10**-scale
    if units % days_left == 0:
        return EXACT.scaleb(Decimal(units // days_left), -scale)
    # Ceiling division on integers: exact, and no float anywhere.
    cents = -(-units * 100 // (days_left * 10**scale))
    return EXACT.scaleb(Decimal(cents), -2)


@dataclass(frozen=True, slots=True)
class CriterionStanding:
    criterion_id: str
    kpi: Kpi
    target_value: Decimal
    achieved: Decimal
    attainment_percent: Decimal
    remaining: Decimal
    reached: bool


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's standing on a target: its weakest criterion decides percent and colour."""

    criteria: tuple[CriterionStanding, ...]
    attainment_percent: Decimal
    colour: Colour
    complete: bool

    @property
    def primary(self) -> CriterionStanding:
        """The first criterion, whose achieved value is the target's achievement value."""
        return self.criteria[0]


def standing(items: Sequence[tuple[str, Kpi, Decimal, Decimal]]) -> Standing:
    """Stands each (criterion_id, kpi, target_value, achieved) and the target as a whole."""
    if not items:
        raise ValueError("a target has at least one criterion")
    criteria = tuple(
        CriterionStanding(
            criterion_id=criterion_id,
            kpi=kpi,
            target_value=target,
            achieved=achieved,
            attainment_percent=attainment_percent(achieved, target),
            remaining=remaining(achieved, target),
            reached=reaches(achieved, target, GREEN_FROM),
        )
        for criterion_id, kpi, target, achieved in items
    )
    lowest = criteria[_lowest([(c.target_value, c.achieved) for c in criteria])]
    return Standing(
        criteria=criteria,
        attainment_percent=lowest.attainment_percent,
        # colour() of the lowest criterion, reusing its GREEN test from above.
        colour=_colour(lowest.achieved, lowest.target_value, lowest.reached),
        complete=all(criterion.reached for criterion in criteria),
    )


def summary(items: Sequence[tuple[Decimal, Decimal]]) -> tuple[Decimal, bool]:
    """(attainment percent, complete) of (target_value, achieved) pairs: what `standing`
    gives for them, without the rest of a standing (what a progress row stores)."""
    if not items:
        raise ValueError("a target has at least one criterion")
    target, achieved = items[_lowest(items)]
    return attainment_percent(achieved, target), all(reaches(a, t, GREEN_FROM) for t, a in items)


def _lowest(items: Sequence[tuple[Decimal, Decimal]]) -> int:
    """The index of the weakest (target_value, achieved) pair; ties keep the earlier one."""
    lowest = 0
    for i in range(1, len(items)):
        # a1/t1 < a2/t2 <=> a1*t2 < a2*t1 for positive targets.
        target, achieved = items[i]
        if EXACT.multiply(achieved, items[lowest][0]) < EXACT.multiply(items[lowest][1], target):
            lowest = i
    return lowest
