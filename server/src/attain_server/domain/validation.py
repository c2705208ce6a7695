"""Semantic checks of a target definition and other configuration, naming every bad field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .errors import FailedPrecondition, Violations, quoted
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
from .rewards import MAX_EVERY, MAX_PERCENT, MAX_POINTS, points_within_limit, rule_step_incentives

CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch: `$` passes a "\n"
CODE_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
# Lengths of the columns strings land in (store/tables.py): identifiers and labels,
# cycle names, voucher codes, free text.
MAX_LABEL = 128
MAX_CYCLE = 32
MAX_KEY_ID = 32
MAX_VOUCHER_CODE = 256
MAX_TEXT = 1000
MAX_OFFSET_DAYS = 366
MAX_EVERY_N_DAYS = 3660

# What one target may hold (decision 0023). Every sale of the brand walks its targets'
# criteria, rules and milestones, so these bound the work one brand's configuration puts on
# each of its transactions; each is far above what a real target needs.
MAX_CRITERIA = 20
MAX_RULES = 50
MAX_MILESTONES = 100  # per rule
MAX_LEVELS = 100  # a rule's levels, and a criterion's level_target_values
MAX_FILTER_LIST = 1000  # a criterion's skus, categories or stores
MAX_AUDIENCE_GROUPS = 100
MAX_AUDIENCE_MEMBERS = 10_000
MAX_MEMBER_GROUPS = 100  # the groups one member is in
# Per call: all-or-nothing units that hold the write lock while they run.
MAX_TARGET_VALUES_PER_CALL = 10_000
MAX_VOUCHERS_PER_CALL = 10_000

# Unicode categories no identifier may hold: controls (Cc: NUL, DEL, C1 such as U+0085),
# format characters (Cf: bidi overrides such as U+202E, zero-width U+200B, the BOM),
# surrogates (Cs), private use (Co), unassigned code points (Cn), and the line and paragraph
# separators (Zl, Zp). Such names look alike or empty on screen while differing in bytes.
_REFUSED_IN_LABELS = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Free text may hold tab and newlines (CR, LF) but no other control character; surrogates
# cannot be stored (PostgreSQL refuses NUL and unpaired surrogates alike).
_REFUSED_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Settings of one line (hosts, folders, passwords) hold no control character at all.
_CONTROL_ANY = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _refused_char(value: str) -> str | None:
    """The first character of ``value`` that no identifier may hold, or None."""
    # isprintable() is False for every category refused (and for spaces other than " "),
    # so the usual name is cleared by one C loop and only the rest is read per character.
    if value.isprintable():
        return None
    for char in value:
        if unicodedata.category(char) in _REFUSED_IN_LABELS:
            return char
    return None


def _char_name(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()


_DAYS_RULE = f"must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}"
_POINTS_RULE = f"must be a whole number from 1 to {MAX_POINTS:,}"


def check_code(v: Violations, field: str, value: str) -> None:
    if not value:
        v.add(field, "is required")
    elif not CODE_RE.fullmatch(value):
        v.add(field, CODE_RULE)


def label_ok(value: str, limit: int = MAX_LABEL) -> bool:
    """Whether check_label finds nothing wrong with a non-empty `value`."""
    return (
        len(value) <= limit
        and value == value.strip()
        and (value.isprintable() or _refused_char(value) is None)
    )


def label_error(value: str, limit: int = MAX_LABEL) -> str | None:
    """Why a non-empty ``value`` is no identifier, or None when it is one."""
    if len(value) > limit:
        return f"must be at most {limit} characters"
    if value != value.strip():
        return "must not start or end with spaces"
    char = _refused_char(value)
    if char is not None:
        return (
            f"must not contain control, format or invisible characters (found {_char_name(char)})"
        )
    return None


def check_label(
    v: Violations, field: str, value: str, *, required: bool = False, limit: int = MAX_LABEL
) -> None:
    """Identifiers from brands (member ids, SKUs, levels, groups): non-blank, trimmed,
    bounded to their column, and nothing invisible or controlling in them."""
    if not value:
        if required:
            v.add(field, "is required")
        return
    why = label_error(value, limit)
    if why is not None:
        v.add(field, why)


def check_text(v: Violations, field: str, value: str, *, limit: int = MAX_TEXT) -> None:
    """Free text (display names, descriptions, reasons): bounded, tab and newline allowed,
    no other control character."""
    if len(value) > limit:
        v.add(field, f"must be at most {limit} characters")
    elif (found := _REFUSED_IN_TEXT.search(value)) is not None:
        v.add(
            field,
            "must not contain control characters other than tab and newline "
            f"(found U+{ord(found.group()):04X})",
        )


def require_code(field: str, value: str, *, required: bool = True) -> None:
    """A code a call looks something up by: refused before any query when it could name
    nothing (and so never reaches the database, which may refuse its characters)."""
    if value or required:
        v = Violations()
        check_code(v, field, value)
        v.raise_if_any()


def require_label(field: str, value: str, *, required: bool = True, limit: int = MAX_LABEL) -> None:
    """`require_code` for an identifier (a member id, a level, a group, a cycle)."""
    v = Violations()
    check_label(v, field, value, required=required, limit=limit)
    v.raise_if_any()


def text_error(value: str, limit: int) -> str | None:
    """Why ``value`` cannot be stored in a column of ``limit`` characters as a setting that
    holds no line breaks (a host, a folder, a password), or None: too long, or holding a
    control character (NUL, tab and newlines included)."""
    if len(value) > limit:
        return f"must be at most {limit} characters"
    if _CONTROL_ANY.search(value):
        return "must not contain control characters"
    return None


def zone_error(name: str) -> str | None:
    """Why ``name`` is not a usable IANA zone, or None when it is."""
    if not name:
        return "is required (an IANA time zone such as Asia/Jakarta)"
    if name not in _zones():
        return (
            f"{quoted(name)} is not an IANA time zone (for example Asia/Jakarta or Europe/Berlin)"
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{quoted(name)} is not an IANA time zone"
    return None


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def _check_list(
    v: Violations, field: str, items: Collection[str], limit: int, *, what: str = "entries"
) -> None:
    """A list of identifiers: at most ``limit``, each a label, none twice."""
    if len(items) > limit:
        # One violation for the list, not one per item of a list that is far too long.
        v.add(field, f"must have at most {limit:,} {what} (has {len(items):,})")
        return
    seen: set[str] = set()
    for i, item in enumerate(items):
        check_label(v, f"{field}[{i}]", item, required=True)
        if item in seen:
            v.add(f"{field}[{i}]", f"{quoted(item)} is listed twice")
        seen.add(item)


def too_many(v: Violations, field: str, items: Collection[object], limit: int, what: str) -> bool:
    """Adds a violation when ``items`` holds more than ``limit``; True when it did (then
    its items need not be read one by one)."""
    if len(items) <= limit:
        return False
    v.add(field, f"must have at most {limit:,} {what} (has {len(items):,})")
    return True


def check_incentive(
    v: Violations, field: str, incentive: Incentive | None, *, pools: Collection[str] | None = None
) -> None:
    if incentive is None:
        v.add(field, "is required: points, voucher_pool or badge")
        return
    if incentive.kind is IncentiveKind.POINTS and not points_within_limit(incentive.points):
        v.add(f"{field}.points", _POINTS_RULE)
    elif incentive.kind is IncentiveKind.VOUCHER:
        check_code(v, f"{field}.voucher_pool", incentive.voucher_pool)
    elif incentive.kind is IncentiveKind.BADGE:
        check_label(v, f"{field}.badge", incentive.badge, required=True)


def validate_target(d: TargetDefinition, *, programs: Collection[str]) -> Violations:
    """Every semantic problem of ``d``, each field named within the target ("criteria[0].id");
    ``programs`` are the brand's program codes."""
    v = Violations()
    check_code(v, "code", d.code)
    check_text(v, "display_name", d.display_name)
    check_text(v, "description", d.description)
    _validate_criteria(v, d)
    _validate_period(v, d)
    if not 0 <= d.offset_days <= MAX_OFFSET_DAYS:
        v.add("offset_days", f"must be between 0 and {MAX_OFFSET_DAYS}")
    _validate_audience(v, d)
    _validate_rules(v, d, programs)
    return v


def _validate_criteria(v: Violations, d: TargetDefinition) -> None:
    if not d.criteria:
        v.add("criteria", "at least one criterion is required")
    if too_many(v, "criteria", d.criteria, MAX_CRITERIA, "criteria"):
        return
    seen: set[str] = set()
    for i, c in enumerate(d.criteria):
        f = f"criteria[{i}]"
        check_code(v, f"{f}.id", c.id)
        if c.id in seen:
            v.add(f"{f}.id", f"{quoted(c.id)} is used by another criterion")
        seen.add(c.id)
        if c.target_value <= 0:
            v.add(f"{f}.target_value", "must be greater than 0")
        _validate_level_values(v, f"{f}.level_target_values", c.level_target_values)
        flt = c.filter
        if c.kpi in SKU_KPIS and not flt.skus:
            v.add(f"{f}.filter.skus", f"must name at least one SKU for {c.kpi.value}")
        _check_list(v, f"{f}.filter.skus", flt.skus, MAX_FILTER_LIST, what="SKUs")
        _check_list(v, f"{f}.filter.categories", flt.categories, MAX_FILTER_LIST, what="categories")
        _check_list(v, f"{f}.filter.stores", flt.stores, MAX_FILTER_LIST, what="stores")
        if flt.min_transaction_amount is not None and flt.min_transaction_amount < 0:
            v.add(f"{f}.filter.min_transaction_amount", "must not be negative")
        if flt.min_transaction_quantity is not None and flt.min_transaction_quantity < 0:
            v.add(f"{f}.filter.min_transaction_quantity", "must not be negative")


def level_value_field(field: str, level: str) -> str:
    """The path of one entry of a level_target_values map (the key quoted, cut short)."""
    return f"{field}[{quoted(level)}]"


def _validate_level_values(v: Violations, field: str, values: Mapping[str, Decimal]) -> None:
    if too_many(v, field, values, MAX_LEVELS, "levels"):
        return
    for level, value in values.items():
        check_label(v, level_value_field(field, level), level, required=True)
        if value <= 0:
            v.add(level_value_field(field, level), "must be greater than 0")


def _validate_period(v: Violations, d: TargetDefinition) -> None:
    """Dates within EARLIEST_DAY..LATEST_DAY and at most MAX_EVERY_N_DAYS days a cycle: every
    cycle's bounds, grace included, are then well inside what a datetime can hold."""
    p = d.period
    f = "period"
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


def _validate_audience(v: Violations, d: TargetDefinition) -> None:
    a = d.audience
    f = "audience"
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
    _check_list(v, f"{f}.groups", a.groups, MAX_AUDIENCE_GROUPS, what="groups")
    _check_list(v, f"{f}.member_ids", a.member_ids, MAX_AUDIENCE_MEMBERS, what="members")


def _validate_rules(v: Violations, d: TargetDefinition, programs: Collection[str]) -> None:
    if too_many(v, "rules", d.rules, MAX_RULES, "rules"):
        return
    seen: set[str] = set()
    for i, rule in enumerate(d.rules):
        f = f"rules[{i}]"
        check_code(v, f"{f}.id", rule.id)
        if rule.id in seen:
            v.add(f"{f}.id", f"{quoted(rule.id)} is used by another rule")
        seen.add(rule.id)
        if rule.program and rule.program not in programs:
            v.add(f"{f}.program", f"unknown program {quoted(rule.program)}")
        if not 0 <= rule.min_attainment_percent <= MAX_PERCENT:
            v.add(f"{f}.min_attainment_percent", f"must be between 0 and {MAX_PERCENT:,}")
        if rule.cap_points is not None and not points_within_limit(rule.cap_points):
            v.add(f"{f}.cap_points", f"{_POINTS_RULE} (leave unset for no cap)")
        _check_list(v, f"{f}.levels", rule.levels, MAX_LEVELS, what="levels")
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
        if not points_within_limit(spec.points):
            v.add(f"{f}.per_x.points", _POINTS_RULE)
    elif isinstance(spec, MilestonesSpec):
        _validate_milestones(v, f"{f}.milestones.milestones", spec)


def _validate_milestones(v: Violations, field: str, spec: MilestonesSpec) -> None:
    if not spec.milestones:
        v.add(field, "at least one milestone is required")
    if too_many(v, field, spec.milestones, MAX_MILESTONES, "milestones"):
        return
    previous = None
    for j, m in enumerate(spec.milestones):
        mf = f"{field}[{j}]"
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
            f"target {quoted(d.code)} cannot be used: its period has no cycles Attain can compute "
            f"({exc}); update its period to days between {EARLIEST_DAY.isoformat()} and "
            f"{LATEST_DAY.isoformat()}"
        ) from exc
    for i, rule in enumerate(d.rules):
        if any(points > MAX_POINTS for points in _immediate_points(rule)):
            raise UnusableTarget(
                f"target {quoted(d.code)} cannot be used: rule {quoted(rule.id)} (rules[{i}]) "
                f"gives more than the {MAX_POINTS:,} points one award may carry; update its rules"
            )
    return calendar


def _immediate_points(rule: RewardRule) -> list[int]:
    """The points a FIXED or MILESTONES rule gives the moment a sale crosses a threshold
    (cycle-close rules are checked when they compute: `close_due`)."""
    return [incentive.points for incentive in rule_step_incentives(rule)]
