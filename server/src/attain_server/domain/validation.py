"""Semantic checks of a target definition and other configuration, naming every bad field."""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .errors import FailedPrecondition, Violations
from .model import (
    SKU_KPIS,
    AudienceKind,
    FixedSpec,
    Incentive,
    IncentiveKind,
    MilestonesSpec,
    PercentageSpec,
    PeriodKind,
    PerXSpec,
    RewardRule,
    TargetDefinition,
)
from .periods import EARLIEST_DAY, LATEST_DAY, Calendar
from .rewards import MAX_EVERY, MAX_PERCENT, MAX_POINTS

_CONTROL = re.compile(r"[\x00-\x1f]")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CODE_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
MAX_TEXT = 1000
MAX_OFFSET_DAYS = 366
MAX_EVERY_N_DAYS = 3660
MAX_LIST = 10_000
_DAYS_RULE = f"must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}"
_POINTS_RULE = f"must be a whole number from 1 to {MAX_POINTS:,}"


def check_code(v: Violations, field: str, value: str) -> None:
    if not value:
        v.add(field, "is required")
    elif not CODE_RE.match(value):
        v.add(field, CODE_RULE)


def label_ok(value: str) -> bool:
    """Whether check_label finds nothing wrong with a non-empty `value`."""
    return value == value.strip() and len(value) <= 128 and not _CONTROL.search(value)


def check_label(v: Violations, field: str, value: str, *, required: bool = False) -> None:
    """Free-form identifiers from brands (SKUs, levels, groups): non-blank, trimmed, bounded."""
    if not value:
        if required:
            v.add(field, "is required")
        return
    if value != value.strip():
        v.add(field, "must not start or end with spaces")
    elif len(value) > 128:
        v.add(field, "must be at most 128 characters")
    elif _CONTROL.search(value):
        v.add(field, "must not contain control characters")


def check_text(v: Violations, field: str, value: str) -> None:
    if len(value) > MAX_TEXT:
        v.add(field, f"must be at most {MAX_TEXT} characters")


def zone_error(name: str) -> str | None:
    """Why ``name`` is not a usable IANA zone, or None when it is."""
    if not name:
        return "is required (an IANA time zone such as Asia/Jakarta)"
    if name not in _zones():
        return f"{name!r} is not an IANA time zone (for example Asia/Jakarta or Europe/Berlin)"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not an IANA time zone"
    return None


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def _check_list(v: Violations, field: str, items: Collection[str]) -> None:
    if len(items) > MAX_LIST:
        v.add(field, f"must have at most {MAX_LIST} entries")
        return
    seen: set[str] = set()
    for i, item in enumerate(items):
        check_label(v, f"{field}[{i}]", item, required=True)
        if item in seen:
            v.add(f"{field}[{i}]", f"{item!r} is listed twice")
        seen.add(item)


def check_incentive(
    v: Violations, field: str, incentive: Incentive | None, *, pools: Collection[str] | None = None
) -> None:
    if incentive is None:
        v.add(field, "is required: points, voucher_pool or badge")
        return
    if incentive.kind is IncentiveKind.POINTS and not 0 < incentive.points <= MAX_POINTS:
        v.add(f"{field}.points", _POINTS_RULE)
    elif incentive.kind is IncentiveKind.VOUCHER:
        check_code(v, f"{field}.voucher_pool", incentive.voucher_pool)
    elif incentive.kind is IncentiveKind.BADGE:
        check_label(v, f"{field}.badge", incentive.badge, required=True)


def validate_target(
    d: TargetDefinition, *, programs: Collection[str], prefix: str = "target"
) -> Violations:
    """Every semantic problem of ``d``; ``programs`` are the brand's program codes."""
    v = Violations()
    check_code(v, f"{prefix}.code", d.code)
    check_text(v, f"{prefix}.display_name", d.display_name)
    check_text(v, f"{prefix}.description", d.description)
    _validate_criteria(v, d, prefix)
    _validate_period(v, d, prefix)
    if not 0 <= d.offset_days <= MAX_OFFSET_DAYS:
        v.add(f"{prefix}.offset_days", f"must be between 0 and {MAX_OFFSET_DAYS}")
    _validate_audience(v, d, prefix)
    _validate_rules(v, d, prefix, programs)
    return v


def _validate_criteria(v: Violations, d: TargetDefinition, prefix: str) -> None:
    if not d.criteria:
        v.add(f"{prefix}.criteria", "at least one criterion is required")
    seen: set[str] = set()
    for i, c in enumerate(d.criteria):
        f = f"{prefix}.criteria[{i}]"
        check_code(v, f"{f}.id", c.id)
        if c.id in seen:
            v.add(f"{f}.id", f"{c.id!r} is used by another criterion")
        seen.add(c.id)
        if c.target_value <= 0:
            v.add(f"{f}.target_value", "must be greater than 0")
        for level, value in c.level_target_values.items():
            check_label(v, f"{f}.level_target_values[{level!r}]", level, required=True)
            if value <= 0:
                v.add(f"{f}.level_target_values[{level!r}]", "must be greater than 0")
        flt = c.filter
        if c.kpi in SKU_KPIS and not flt.skus:
            v.add(f"{f}.filter.skus", f"must name at least one SKU for {c.kpi.value}")
        _check_list(v, f"{f}.filter.skus", flt.skus)
        _check_list(v, f"{f}.filter.categories", flt.categories)
        _check_list(v, f"{f}.filter.stores", flt.stores)
        if flt.min_transaction_amount is not None and flt.min_transaction_amount < 0:
            v.add(f"{f}.filter.min_transaction_amount", "must not be negative")
        if flt.min_transaction_quantity is not None and flt.min_transaction_quantity < 0:
            v.add(f"{f}.filter.min_transaction_quantity", "must not be negative")


def _validate_period(v: Violations, d: TargetDefinition, prefix: str) -> None:
    """Dates within EARLIEST_DAY..LATEST_DAY and at most MAX_EVERY_N_DAYS days a cycle: every
    cycle's bounds, grace included, are then well inside what a datetime can hold."""
    p = d.period
    f = f"{prefix}.period"
    if not EARLIEST_DAY <= p.start_date <= LATEST_DAY:
        v.add(f"{f}.start_date", _DAYS_RULE)
    if p.end_date is not None and not EARLIEST_DAY <= p.end_date <= LATEST_DAY:
        v.add(f"{f}.end_date", _DAYS_RULE)
    if p.end_date is not None and p.end_date < p.start_date:
        v.add(f"{f}.end_date", "must not be before start_date")
    if p.kind is PeriodKind.CUSTOM and p.end_date is None:
        v.add(f"{f}.end_date", "is required for a CUSTOM period")
    if p.kind is PeriodKind.EVERY_N_DAYS:
        if not 1 <= p.every_n_days <= MAX_EVERY_N_DAYS:
            v.add(f"{f}.every_n_days", f"must be between 1 and {MAX_EVERY_N_DAYS}")
    elif p.every_n_days != 0:
        v.add(f"{f}.every_n_days", "is only used by EVERY_N_DAYS periods: leave it 0")


def _validate_audience(v: Violations, d: TargetDefinition, prefix: str) -> None:
    a = d.audience
    f = f"{prefix}.audience"
    if a.kind is AudienceKind.GROUPS:
        if not a.groups:
            v.add(f"{f}.groups", "name at least one group for a GROUPS audience")
        if a.member_ids:
            v.add(f"{f}.member_ids", "must be empty for a GROUPS audience")
    elif a.kind is AudienceKind.MEMBERS:
        if not a.member_ids:
            v.add(f"{f}.member_ids", "name at least one member for a MEMBERS audience")
        if a.groups:
            v.add(f"{f}.groups", "must be empty for a MEMBERS audience")
    elif a.groups or a.member_ids:
        v.add(f"{f}.kind", "set kind to GROUPS or MEMBERS to use groups or member_ids")
    _check_list(v, f"{f}.groups", a.groups)
    _check_list(v, f"{f}.member_ids", a.member_ids)


def _validate_rules(
    v: Violations, d: TargetDefinition, prefix: str, programs: Collection[str]
) -> None:
    seen: set[str] = set()
    for i, rule in enumerate(d.rules):
        f = f"{prefix}.rules[{i}]"
        check_code(v, f"{f}.id", rule.id)
        if rule.id in seen:
            v.add(f"{f}.id", f"{rule.id!r} is used by another rule")
        seen.add(rule.id)
        if rule.program and rule.program not in programs:
            v.add(f"{f}.program", f"unknown program {rule.program!r}")
        if not 0 <= rule.min_attainment_percent <= MAX_PERCENT:
            v.add(f"{f}.min_attainment_percent", f"must be between 0 and {MAX_PERCENT:,}")
        if rule.cap_points is not None and not 0 < rule.cap_points <= MAX_POINTS:
            v.add(f"{f}.cap_points", f"{_POINTS_RULE} (leave unset for no cap)")
        _check_list(v, f"{f}.levels", rule.levels)
        _validate_spec(v, f, rule)


def _validate_spec(v: Violations, f: str, rule: RewardRule) -> None:
    spec = rule.spec
    if isinstance(spec, FixedSpec):
        _check_percent(v, f"{f}.fixed.threshold_percent", spec.threshold_percent)
        check_incentive(v, f"{f}.fixed.incentive", spec.incentive)
    elif isinstance(spec, PercentageSpec):
        _check_percent(v, f"{f}.percentage.percent", spec.percent)
    elif isinstance(spec, PerXSpec):
        if not 0 < spec.every <= MAX_EVERY:
            v.add(f"{f}.per_x.every", f"must be greater than 0 and at most {MAX_EVERY:,}")
        if not 0 < spec.points <= MAX_POINTS:
            v.add(f"{f}.per_x.points", _POINTS_RULE)
    elif isinstance(spec, MilestonesSpec):
        if not spec.milestones:
            v.add(f"{f}.milestones.milestones", "at least one milestone is required")
        previous = None
        for j, m in enumerate(spec.milestones):
            mf = f"{f}.milestones.milestones[{j}]"
            in_range = _check_percent(v, f"{mf}.attainment_percent", m.attainment_percent)
            if in_range and previous is not None and m.attainment_percent <= previous:
                v.add(
                    f"{mf}.attainment_percent",
                    f"milestones must increase: {m.attainment_percent} follows {previous}",
                )
            previous = m.attainment_percent
            check_incentive(v, f"{mf}.incentive", m.incentive)


def _check_percent(v: Violations, field: str, value: Decimal) -> bool:
    """Whether ``value`` is a percent a rule may name; adds the violation when not."""
    if 0 < value <= MAX_PERCENT:
        return True
    v.add(field, f"must be greater than 0 and at most {MAX_PERCENT:,}")
    return False


# ---------------------------------------------------------------- stored definitions


class UnusableTarget(FailedPrecondition):
    """A stored target its cycles or awards cannot be computed for (a definition written
    before today's checks, or by hand): reads refuse it, ingest skips it, the clock holds it."""

    reason = "TARGET_UNUSABLE"


def target_calendar(d: TargetDefinition, zone: ZoneInfo) -> Calendar:
    """The target's cycles in ``zone``; UnusableTarget when its period has none (dates
    outside the modelled calendar) or a rule gives more points at once than an award may
    carry. `validate_target` refuses both for new definitions; stored ones may predate it."""
    try:
        calendar = Calendar(d.period, zone, d.offset_days)
    except ValueError as exc:
        raise UnusableTarget(
            f"target {d.code!r} cannot be used: its period has no cycles Attain can compute "
            f"({exc}); update its period to days between {EARLIEST_DAY.isoformat()} and "
            f"{LATEST_DAY.isoformat()}"
        ) from exc
    for i, rule in enumerate(d.rules):
        if any(points > MAX_POINTS for points in _immediate_points(rule)):
            raise UnusableTarget(
                f"target {d.code!r} cannot be used: rule {rule.id!r} (rules[{i}]) gives more "
                f"than the {MAX_POINTS:,} points one award may carry; update its rules"
            )
    return calendar


def _immediate_points(rule: RewardRule) -> list[int]:
    """The points a FIXED or MILESTONES rule gives the moment a sale crosses a threshold
    (cycle-close rules are checked when they compute: `close_due`)."""
    spec = rule.spec
    if isinstance(spec, FixedSpec):
        return [spec.incentive.points]
    if isinstance(spec, MilestonesSpec):
        return [m.incentive.points for m in spec.milestones]
    return []
