"""What reward rules give (SPEC section 7): immediate thresholds and cycle-close points."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from .attainment import Standing, reaches
from .decimals import HUNDRED, WIDE
from .errors import FailedPrecondition
from .model import (
    FixedSpec,
    Incentive,
    IncentiveKind,
    MilestonesSpec,
    PercentageSpec,
    PerXSpec,
    RewardRule,
    Rounding,
    RuleSpec,
)

_ROUNDING = {Rounding.DOWN: ROUND_DOWN, Rounding.HALF_UP: ROUND_HALF_UP, Rounding.UP: ROUND_UP}

# The most points one award or one ledger entry may carry. A points column is a BIGINT
# (about 9.2 * 10^18), and a balance is a sum of entries: with every entry this small, no
# entry overflows and a balance stays far inside the column's range for millions of them.
MAX_POINTS = 10**12
# The largest balance (of either sign) an adjustment may leave in one program.
MAX_BALANCE = 10**15
# The largest percent a rule may name (a threshold, a minimum attainment, a PERCENTAGE).
MAX_PERCENT = Decimal(1_000_000)
# The largest amount a PER_X rule may count in ("every").
MAX_EVERY = Decimal(10**15)


def points_within_limit(points: int, *, signed: bool = False) -> bool:
    """Whether one award's or entry's points are allowed: 1 to MAX_POINTS, or, `signed` (an
    adjustment may take points back), -MAX_POINTS to MAX_POINTS."""
    return (-MAX_POINTS if signed else 1) <= points <= MAX_POINTS


class AwardTooLarge(FailedPrecondition):
    """A cycle-close rule computed more points for one member than one award may carry."""

    reason = "AWARD_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class Due:
    """An award a rule gives: its natural key part (rule, milestone) and what it gives."""

    rule_id: str
    # The threshold or milestone percent; None for cycle-close rules.
    milestone: Decimal | None
    incentive: Incentive


def is_immediate(rule: RewardRule) -> bool:
    """FIXED and MILESTONES pay the moment a threshold is crossed; the others at close."""
    return isinstance(rule.spec, FixedSpec | MilestonesSpec)


def pays_from(rule: RewardRule) -> Decimal | None:
    """The lowest attainment percent at which an immediate rule pays anything: its lowest
    threshold or its minimum attainment, whichever is higher. None for a rule that never
    pays on the spot (paid at close, or without milestones).

    `immediate_due` gives nothing below it: its thresholds are reached lowest first, and a
    rule qualifies only from its minimum attainment. So a standing every criterion of which
    stays below this percent need not be built to know that (`could_pay`)."""
    steps = _steps(rule.spec)
    if not steps:
        return None
    return max(min(pct for pct, _ in steps), rule.min_attainment_percent)


def could_pay(
    rule: RewardRule, percent: Decimal, level: str, pairs: Iterable[tuple[Decimal, Decimal]]
) -> bool:
    """Whether `immediate_due` can give anything for a standing of these (achieved, target)
    pairs, `percent` being the rule's `pays_from`: the same exact test, on the values alone."""
    return rule.applies_to_level(level) and all(
        reaches(achieved, target, percent) for achieved, target in pairs
    )


def reached(standing: Standing, percent: Decimal) -> bool:
    """Every criterion reaches ``percent`` (exactly: no rounded percentages compared)."""
    return all(reaches(c.achieved, c.target_value, percent) for c in standing.criteria)


def qualifies(rule: RewardRule, standing: Standing, level: str) -> bool:
    """The rule applies to the member's level and the minimum attainment is met."""
    return rule.applies_to_level(level) and reached(standing, rule.min_attainment_percent)


def _whole(value: Decimal, rounding: Rounding) -> int:
    """Whole points, cut in the wide context the points were computed in."""
    return int(value.quantize(Decimal(1), rounding=_ROUNDING[rounding], context=WIDE))


def percentage_points(value: Decimal, percent: Decimal, rounding: Rounding) -> int:
    """``percent``% of ``value`` in whole points: 20% of 2,500 is 500."""
    return max(_whole(WIDE.divide(WIDE.multiply(value, percent), HUNDRED), rounding), 0)


def per_x_points(value: Decimal, every: Decimal, points: int, rounding: Rounding) -> int:
    """``points`` for every ``every`` of value: 37 units at 5 per 10 is 15 (3 whole tens)."""
    return max(_whole(WIDE.divide(value, every), rounding), 0) * points


def immediate_due(rule: RewardRule, standing: Standing, level: str) -> list[Due]:
    """Every threshold of a FIXED or MILESTONES rule the standing has reached, lowest first.

    Callers subtract what was already awarded (by natural key), so one sale that crosses
    several milestones gives each of them, and no threshold pays twice.
    """
    if not qualifies(rule, standing, level):
        return []
    return [
        Due(rule.id, pct, incentive)
        for pct, incentive in _steps(rule.spec)
        if reached(standing, pct)
    ]


def rule_thresholds(rule: RewardRule) -> list[Decimal]:
    """The attainment percents at which a FIXED or MILESTONES rule pays; none for others."""
    return [pct for pct, _ in _steps(rule.spec)]


def rule_step_incentives(rule: RewardRule) -> list[Incentive]:
    """What each threshold of a FIXED or MILESTONES rule pays, in threshold order."""
    return [incentive for _, incentive in _steps(rule.spec)]


def _steps(spec: RuleSpec) -> list[tuple[Decimal, Incentive]]:
    """The thresholds of a FIXED or MILESTONES rule with what each pays; none for others
    (the one place that reads them from a rule's spec)."""
    if isinstance(spec, FixedSpec):
        return [(spec.threshold_percent, spec.incentive)]
    if isinstance(spec, MilestonesSpec):
        return [(m.attainment_percent, m.incentive) for m in spec.milestones]
    return []


def close_due(rule: RewardRule, standing: Standing, level: str) -> Due | None:
    """The points a PERCENTAGE or PER_X rule gives on final values; None when nothing.

    Raises AwardTooLarge when the points pass MAX_POINTS and the rule's own cap does not
    bring them under it: such an award is a misconfigured rule or a wrong sale, and giving
    it (or a silently cut one) would be worse than waiting for the admin (decision 0019)."""
    if not qualifies(rule, standing, level):
        return None
    value = standing.primary.achieved  # the "achievement value"
    spec = rule.spec
    if not isinstance(spec, PercentageSpec | PerXSpec):
        return None
    points: int | None = None  # None: past MAX_POINTS before rounding
    if not _past_max(spec, value):
        if isinstance(spec, PercentageSpec):
            points = percentage_points(value, spec.percent, rule.rounding)
        else:
            points = per_x_points(value, spec.every, spec.points, rule.rounding)
    if rule.cap_points is not None and (points is None or points > rule.cap_points):
        points = rule.cap_points
    if points is None or points > MAX_POINTS:
        much = f"{points:,} points, more than" if points is not None else "more than"
        raise AwardTooLarge(
            f"rule {rule.id!r} would give {much} the {MAX_POINTS:,} points one award may "
            f"carry, for an achievement of {value:f}: lower the rule, give it a cap_points, "
            "or correct the sales"
        )
    if points <= 0:
        return None
    return Due(rule.id, None, Incentive(IncentiveKind.POINTS, points=points))


def _past_max(spec: PercentageSpec | PerXSpec, value: Decimal) -> bool:
    """Whether the award is past MAX_POINTS before any rounding. Then its whole points are
    not computed at all: a value of many digits times a large percent would not fit the
    context that computes them exactly."""
    if isinstance(spec, PercentageSpec):
        raw = WIDE.divide(WIDE.multiply(value, spec.percent), HUNDRED)
    else:
        raw = WIDE.divide(value, spec.every)  # whole units; each gives at least one point
    return raw > MAX_POINTS + 1


def check_adjusted_balance(member_id: str, program: str, before: int, after: int) -> None:
    """An adjustment may leave a balance within ±MAX_BALANCE, or bring one that is not
    (awards took it there) closer to it; anything else is refused."""
    if abs(after) > MAX_BALANCE and abs(after) >= abs(before):
        raise FailedPrecondition(
            f"the adjustment would take the balance of member {member_id!r} in program "
            f"{program!r} from {before:,} to {after:,} points, past the {MAX_BALANCE:,} "
            "(either sign) a balance may hold",
            reason="BALANCE_LIMIT",
        )


def reportable_balance(balance: int) -> int:
    """A balance as the API reports it (a 64-bit integer). Entries of at most MAX_POINTS keep
    every balance far inside that unless millions of them pile up on one member."""
    if not -(2**63) <= balance < 2**63:
        raise FailedPrecondition(
            f"the balance is {balance:,} points, beyond what the API can report: correct it "
            "with AdjustPoints",
            reason="BALANCE_OUT_OF_RANGE",
        )
    return balance


def capped(rule: RewardRule, due: Due, already_points: int) -> Due | None:
    """Applies the rule's per-member, per-cycle cap to a points award; None if nothing is left."""
    if due.incentive.kind is not IncentiveKind.POINTS or rule.cap_points is None:
        return due
    room = rule.cap_points - already_points
    if room <= 0:
        return None
    if due.incentive.points <= room:
        return due
    return Due(due.rule_id, due.milestone, Incentive(IncentiveKind.POINTS, points=room))
