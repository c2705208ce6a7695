"""Protobuf messages to domain values and back. Parsing collects every bad field at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import progress_pb2 as ppb
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application.awards import AwardLike
from attain_server.application.cycles import CycleView
from attain_server.application.standings import ProgressView
from attain_server.domain import attainment as att
from attain_server.domain.decimals import DecimalFormatError, format_decimal, parse_decimal
from attain_server.domain.errors import Violations, quoted
from attain_server.domain.kpis import Line
from attain_server.domain.model import (
    ApiKey,
    Audience,
    AudienceKind,
    Brand,
    Criterion,
    CriterionFilter,
    FixedSpec,
    Incentive,
    IncentiveKind,
    Kpi,
    Member,
    Milestone,
    MilestonesSpec,
    PercentageSpec,
    Period,
    PeriodKind,
    PerXSpec,
    Program,
    ReversalPolicy,
    RewardRule,
    Role,
    Rounding,
    RuleSpec,
    Target,
    TargetDefinition,
    TargetState,
    TargetValue,
)
from attain_server.domain.periods import CycleState
from attain_server.domain.transactions import (
    LINES_RULE,
    MAX_LINES,
    YEARS_RULE,
    Transaction,
    TransactionType,
)
from attain_server.domain.validation import (
    MAX_CRITERIA,
    MAX_LEVELS,
    MAX_MILESTONES,
    MAX_RULES,
    level_value_field,
    too_many,
)
from attain_server.store.tables import LedgerEntryRow

E = TypeVar("E")


# ---------------------------------------------------------------- scalars


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The instants a datetime can hold (years 1 to 9999), in seconds from the epoch.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


def timestamp(dt: datetime | None) -> Timestamp | None:
    """Exact (integer arithmetic): Timestamp.FromDatetime does the same in slower Python."""
    if dt is None:
        return None
    if dt.tzinfo is None:  # as FromDatetime would: a naive time is the machine's local time
        dt = dt.astimezone(UTC)
    delta = dt - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


_MICROSECOND = timedelta(microseconds=1)


def from_timestamp(ts: Timestamp) -> datetime:
    """ToDatetime(tzinfo=UTC) for valid timestamps, in integer arithmetic (nanoseconds are
    cut to microseconds, as ToDatetime does); anything else goes to ToDatetime itself, which
    raises ValueError (`timestamp_error` says why first, for a violation)."""
    nanos = ts.nanos
    seconds = ts.seconds
    if 0 <= nanos < 1_000_000_000 and _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        # A multiple of one microsecond: no keyword parsing (a third of the time).
        return _EPOCH + _MICROSECOND * (seconds * 1_000_000 + nanos // 1000)
    return ts.ToDatetime(tzinfo=UTC)


def timestamp_error(ts: Timestamp) -> str | None:
    """Why `ts` is no instant a datetime holds, or None when it is one."""
    if not 0 <= ts.nanos < 1_000_000_000:
        return f"nanos must be between 0 and 999,999,999, not {ts.nanos}"
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS:
        return f"{YEARS_RULE}, not {ts.seconds} seconds from 1970"
    return None


def dec(value: Decimal | None) -> typ.Decimal | None:
    return None if value is None else typ.Decimal(value=format_decimal(value))


_ROLE_TO_PROTO = {
    Role.BRAND_ADMIN: typ.ROLE_BRAND_ADMIN,
    Role.INGEST: typ.ROLE_INGEST,
    Role.MEMBER: typ.ROLE_MEMBER,
}
_KPI_TO_PROTO = {k: typ.Kpi.Value(f"KPI_{k.value}") for k in Kpi}
_PERIOD_TO_PROTO = {k: typ.PeriodKind.Value(f"PERIOD_KIND_{k.value}") for k in PeriodKind}
_AUDIENCE_TO_PROTO = {k: tpb.AudienceKind.Value(f"AUDIENCE_KIND_{k.value}") for k in AudienceKind}
_REVERSAL_TO_PROTO = {
    k: tpb.ReversalPolicy.Value(f"REVERSAL_POLICY_{k.value}") for k in ReversalPolicy
}
_ROUNDING_TO_PROTO = {k: tpb.Rounding.Value(f"ROUNDING_{k.value}") for k in Rounding}
_STATE_TO_PROTO = {k: tpb.TargetState.Value(f"TARGET_STATE_{k.value}") for k in TargetState}


def _invert(mapping: Mapping[E, int]) -> dict[int, E]:
    return {int(v): k for k, v in mapping.items()}


ROLE_FROM_PROTO = _invert(_ROLE_TO_PROTO)
_KPI_FROM_PROTO = _invert(_KPI_TO_PROTO)
_PERIOD_FROM_PROTO = _invert(_PERIOD_TO_PROTO)
_AUDIENCE_FROM_PROTO = _invert(_AUDIENCE_TO_PROTO)
_REVERSAL_FROM_PROTO = _invert(_REVERSAL_TO_PROTO)
_ROUNDING_FROM_PROTO = _invert(_ROUNDING_TO_PROTO)


def role_to_proto(role: Role) -> typ.Role.ValueType:
    return _ROLE_TO_PROTO[role]


class Parser:
    """Turns request fields into domain values, recording a violation for each bad one."""

    def __init__(self) -> None:
        self.violations = Violations()

    def add(self, field: str, reason: str) -> None:
        self.violations.add(field, reason)

    def raise_if_any(self) -> None:
        self.violations.raise_if_any()

    def decimal(self, msg: typ.Decimal, field: str) -> Decimal:
        try:
            return parse_decimal(msg.value)
        except DecimalFormatError as exc:
            self.add(f"{field}.value" if msg.value else field, str(exc))
            return Decimal(0)

    def optional_decimal(self, holder: Any, name: str, field: str) -> Decimal | None:
        if not holder.HasField(name):
            return None
        return self.decimal(getattr(holder, name), field)

    def date(self, text: str, field: str, *, required: bool = True) -> date | None:
        if not text:
            if required:
                self.add(field, "is required (YYYY-MM-DD)")
            return None
        try:
            if len(text) != 10:
                raise ValueError
            return date.fromisoformat(text)
        except ValueError:
            self.add(field, f"{quoted(text)} is not a date like 2026-11-01")
            return None

    def enum(self, value: int, mapping: Mapping[Any, E], field: str, default: E | None = None) -> E:
        if value in mapping:
            return mapping[value]
        if value == 0 and default is not None:
            return default
        names = ", ".join(str(getattr(v, "value", v)) for v in mapping.values())
        reason = "is required" if value == 0 else f"unknown value {value}"
        self.add(field, f"{reason} (one of {names})")
        return next(iter(mapping.values()))


# ---------------------------------------------------------------- targets: proto -> domain


def _incentive(p: Parser, msg: typ.Incentive, field: str) -> Incentive:
    which = msg.WhichOneof("incentive")
    if which == "points":
        return Incentive(IncentiveKind.POINTS, points=msg.points)
    if which == "voucher_pool":
        return Incentive(IncentiveKind.VOUCHER, voucher_pool=msg.voucher_pool)
    if which == "badge":
        return Incentive(IncentiveKind.BADGE, badge=msg.badge)
    p.add(field, "is required: set points, voucher_pool or badge")
    return Incentive(IncentiveKind.POINTS, points=0)


def _criteria(p: Parser, items: Sequence[tpb.Criterion], prefix: str) -> tuple[Criterion, ...]:
    # Lists past their limits are refused before their items are parsed one by one: a
    # request of 4 MB can hold hundreds of thousands, and the event loop is everyone's.
    if too_many(p.violations, f"{prefix}.criteria", items, MAX_CRITERIA, "criteria"):
        return ()
    out = []
    for i, c in enumerate(items):
        f = f"{prefix}.criteria[{i}]"
        flt = c.filter
        levels = f"{f}.level_target_values"
        if too_many(p.violations, levels, c.level_target_values, MAX_LEVELS, "levels"):
            continue
        out.append(
            Criterion(
                id=c.id or f"c{i + 1}",
                kpi=p.enum(c.kpi, _KPI_FROM_PROTO, f"{f}.kpi"),
                target_value=(
                    p.decimal(c.target_value, f"{f}.target_value")
                    if c.HasField("target_value")
                    else _missing(p, f"{f}.target_value")
                ),
                filter=CriterionFilter(
                    skus=tuple(flt.skus),
                    categories=tuple(flt.categories),
                    stores=tuple(flt.stores),
                    min_transaction_amount=p.optional_decimal(
                        flt, "min_transaction_amount", f"{f}.filter.min_transaction_amount"
                    ),
                    min_transaction_quantity=p.optional_decimal(
                        flt, "min_transaction_quantity", f"{f}.filter.min_transaction_quantity"
                    ),
                ),
                level_target_values={
                    level: p.decimal(value, level_value_field(levels, level))
                    for level, value in sorted(c.level_target_values.items())
                },
            )
        )
    return tuple(out)


def _missing(p: Parser, field: str) -> Decimal:
    p.add(field, "is required")
    return Decimal(0)


def _period(p: Parser, msg: tpb.Period, prefix: str) -> Period:
    f = f"{prefix}.period"
    kind = p.enum(msg.kind, _PERIOD_FROM_PROTO, f"{f}.kind")
    start = p.date(msg.start_date, f"{f}.start_date")
    end = p.date(msg.end_date, f"{f}.end_date", required=False)
    return Period(kind, start or date(2000, 1, 1), end, msg.every_n_days)


def _audience(p: Parser, msg: tpb.Audience, prefix: str) -> Audience:
    if msg.kind == tpb.AUDIENCE_KIND_UNSPECIFIED and not msg.groups and not msg.member_ids:
        return Audience()
    kind = p.enum(msg.kind, _AUDIENCE_FROM_PROTO, f"{prefix}.audience.kind")
    return Audience(kind, tuple(msg.groups), tuple(msg.member_ids))


def _rules(p: Parser, items: Sequence[tpb.RewardRule], prefix: str) -> tuple[RewardRule, ...]:
    if too_many(p.violations, f"{prefix}.rules", items, MAX_RULES, "rules"):
        return ()
    out = []
    for i, r in enumerate(items):
        f = f"{prefix}.rules[{i}]"
        spec: RuleSpec
        which = r.WhichOneof("kind")
        if which == "fixed":
            spec = FixedSpec(
                incentive=_incentive(p, r.fixed.incentive, f"{f}.fixed.incentive"),
                threshold_percent=p.optional_decimal(
                    r.fixed, "threshold_percent", f"{f}.fixed.threshold_percent"
                )
                or Decimal(100),
            )
        elif which == "percentage":
            spec = PercentageSpec(
                percent=p.decimal(r.percentage.percent, f"{f}.percentage.percent")
            )
        elif which == "per_x":
            spec = PerXSpec(
                every=p.decimal(r.per_x.every, f"{f}.per_x.every"), points=r.per_x.points
            )
        elif which == "milestones":
            listed = r.milestones.milestones
            if too_many(
                p.violations, f"{f}.milestones.milestones", listed, MAX_MILESTONES, "milestones"
            ):
                continue
            spec = MilestonesSpec(
                tuple(
                    Milestone(
                        p.decimal(
                            m.attainment_percent,
                            f"{f}.milestones.milestones[{j}].attainment_percent",
                        ),
                        _incentive(p, m.incentive, f"{f}.milestones.milestones[{j}].incentive"),
                    )
                    for j, m in enumerate(r.milestones.milestones)
                )
            )
        else:
            p.add(f, "set one rule kind: fixed, percentage, per_x or milestones")
            spec = PercentageSpec(Decimal(1))
        out.append(
            RewardRule(
                id=r.id or f"r{i + 1}",
                spec=spec,
                program=r.program,
                min_attainment_percent=p.optional_decimal(
                    r, "min_attainment_percent", f"{f}.min_attainment_percent"
                )
                or Decimal(0),
                cap_points=r.cap_points if r.HasField("cap_points") else None,
                levels=tuple(r.levels),
                reversal_policy=p.enum(
                    r.reversal_policy,
                    _REVERSAL_FROM_PROTO,
                    f"{f}.reversal_policy",
                    default=ReversalPolicy.KEEP,
                ),
                rounding=p.enum(
                    r.rounding, _ROUNDING_FROM_PROTO, f"{f}.rounding", default=Rounding.DOWN
                ),
            )
        )
    return tuple(out)


_FIELD_PARSERS: dict[str, Callable[[Parser, tpb.Target, str], Any]] = {
    "display_name": lambda p, t, f: t.display_name,
    "description": lambda p, t, f: t.description,
    "criteria": lambda p, t, f: _criteria(p, t.criteria, f),
    "period": lambda p, t, f: _period(p, t.period, f),
    "offset_days": lambda p, t, f: t.offset_days,
    "audience": lambda p, t, f: _audience(p, t.audience, f),
    "rules": lambda p, t, f: _rules(p, t.rules, f),
}
TARGET_FIELDS = tuple(_FIELD_PARSERS)


def target_fields(
    p: Parser, msg: tpb.Target, fields: Iterable[str], prefix: str = "target"
) -> dict[str, Any]:
    """The named definition fields of ``msg`` as domain values (for UpdateTarget masks)."""
    return {name: _FIELD_PARSERS[name](p, msg, prefix) for name in fields}


def target_definition(p: Parser, msg: tpb.Target, prefix: str = "target") -> TargetDefinition:
    fields = target_fields(p, msg, TARGET_FIELDS, prefix)
    return TargetDefinition(code=msg.code, **fields)


# ---------------------------------------------------------------- domain -> proto


def brand_to_proto(b: Brand) -> tpb.Brand:
    return tpb.Brand(
        code=b.code,
        display_name=b.display_name,
        time_zone=b.time_zone,
        create_time=timestamp(b.create_time),
    )


def key_to_proto(k: ApiKey) -> tpb.ApiKey:
    return tpb.ApiKey(
        key_id=k.key_id,
        role=role_to_proto(k.role),
        member_id=k.member_id,
        label=k.label,
        create_time=timestamp(k.create_time),
        revoke_time=timestamp(k.revoke_time),
    )


def program_to_proto(prog: Program) -> tpb.Program:
    return tpb.Program(
        code=prog.code,
        display_name=prog.display_name,
        is_default=prog.is_default,
        create_time=timestamp(prog.create_time),
    )


def member_from_proto(msg: tpb.Member) -> Member:
    return Member(msg.external_id, msg.display_name, msg.level, tuple(msg.groups))


def member_to_proto(m: Member) -> tpb.Member:
    return tpb.Member(
        external_id=m.external_id,
        display_name=m.display_name,
        level=m.level,
        groups=list(m.groups),
        create_time=timestamp(m.create_time),
        update_time=timestamp(m.update_time),
    )


def _incentive_to_proto(i: Incentive) -> typ.Incentive:
    if i.kind is IncentiveKind.POINTS:
        return typ.Incentive(points=i.points)
    if i.kind is IncentiveKind.VOUCHER:
        return typ.Incentive(voucher_pool=i.voucher_pool)
    return typ.Incentive(badge=i.badge)


def _rule_to_proto(r: RewardRule) -> tpb.RewardRule:
    msg = tpb.RewardRule(
        id=r.id,
        program=r.program,
        min_attainment_percent=dec(r.min_attainment_percent),
        levels=list(r.levels),
        reversal_policy=_REVERSAL_TO_PROTO[r.reversal_policy],
        rounding=_ROUNDING_TO_PROTO[r.rounding],
    )
    if r.cap_points is not None:
        msg.cap_points = r.cap_points
    spec = r.spec
    if isinstance(spec, FixedSpec):
        msg.fixed.CopyFrom(
            tpb.FixedRule(
                threshold_percent=dec(spec.threshold_percent),
                incentive=_incentive_to_proto(spec.incentive),
            )
        )
    elif isinstance(spec, PercentageSpec):
        msg.percentage.CopyFrom(tpb.PercentageRule(percent=dec(spec.percent)))
    elif isinstance(spec, PerXSpec):
        msg.per_x.CopyFrom(tpb.PerXRule(every=dec(spec.every), points=spec.points))
    else:
        msg.milestones.CopyFrom(
            tpb.MilestonesRule(
                milestones=[
                    tpb.Milestone(
                        attainment_percent=dec(m.attainment_percent),
                        incentive=_incentive_to_proto(m.incentive),
                    )
                    for m in spec.milestones
                ]
            )
        )
    return msg


def target_to_proto(t: Target) -> tpb.Target:
    d = t.definition
    return tpb.Target(
        code=d.code,
        display_name=d.display_name,
        description=d.description,
        criteria=[
            tpb.Criterion(
                id=c.id,
                kpi=_KPI_TO_PROTO[c.kpi],
                target_value=dec(c.target_value),
                level_target_values={
                    k: typ.Decimal(value=format_decimal(v))
                    for k, v in c.level_target_values.items()
                },
                filter=tpb.CriterionFilter(
                    skus=list(c.filter.skus),
                    categories=list(c.filter.categories),
                    stores=list(c.filter.stores),
                    min_transaction_amount=dec(c.filter.min_transaction_amount),
                    min_transaction_quantity=dec(c.filter.min_transaction_quantity),
                ),
            )
            for c in d.criteria
        ],
        period=tpb.Period(
            kind=_PERIOD_TO_PROTO[d.period.kind],
            start_date=d.period.start_date.isoformat(),
            end_date=d.period.end_date.isoformat() if d.period.end_date else "",
            every_n_days=d.period.every_n_days,
        ),
        offset_days=d.offset_days,
        audience=tpb.Audience(
            kind=_AUDIENCE_TO_PROTO[d.audience.kind],
            groups=list(d.audience.groups),
            member_ids=list(d.audience.member_ids),
        ),
        rules=[_rule_to_proto(r) for r in d.rules],
        state=_STATE_TO_PROTO[t.state],
        create_time=timestamp(t.create_time),
        update_time=timestamp(t.update_time),
        etag=t.etag,
    )


def target_value_from_proto(p: Parser, msg: tpb.TargetValue, field: str) -> TargetValue:
    if not msg.member_id:
        p.add(f"{field}.member_id", "is required")
    if not msg.target_code:
        p.add(f"{field}.target_code", "is required")
    if not msg.cycle:
        p.add(f"{field}.cycle", "is required (e.g. 2026-11)")
    value = (
        p.decimal(msg.value, f"{field}.value")
        if msg.HasField("value")
        else _missing(p, f"{field}.value")
    )
    return TargetValue(msg.member_id, msg.target_code, msg.cycle, msg.criterion_id, value)


def target_value_to_proto(tv: TargetValue) -> tpb.TargetValue:
    return tpb.TargetValue(
        member_id=tv.member_id,
        target_code=tv.target_code,
        cycle=tv.cycle,
        criterion_id=tv.criterion_id,
        value=dec(tv.value),
    )


_CYCLE_STATE_TO_PROTO = {k: typ.CycleState.Value(f"CYCLE_STATE_{k.value}") for k in CycleState}


def cycle_state_to_proto(state: CycleState) -> typ.CycleState.ValueType:
    return _CYCLE_STATE_TO_PROTO[state]


def cycle_to_proto(target_code: str, view: CycleView) -> typ.Cycle:
    w = view.window
    return typ.Cycle(
        target_code=target_code,
        name=w.name,
        start_date=w.start_date.isoformat(),
        end_date=w.end_date.isoformat(),
        start_time=timestamp(w.start_time),
        end_time=timestamp(w.end_time),
        grace_end_time=timestamp(w.grace_end_time),
        state=cycle_state_to_proto(view.state),
        close_time=timestamp(view.close_time),
        hold_reason=view.hold_reason,
    )


# ---------------------------------------------------------------- transactions and progress

_TXN_TYPE_FROM_PROTO = {
    ppb.TRANSACTION_TYPE_SALE: TransactionType.SALE,
    ppb.TRANSACTION_TYPE_RETURN: TransactionType.RETURN,
}
_COLOUR_TO_PROTO = {
    att.Colour.RED: typ.COLOUR_RED,
    att.Colour.ORANGE: typ.COLOUR_ORANGE,
    att.Colour.GREEN: typ.COLOUR_GREEN,
}
_KPI_BY_ID = _KPI_TO_PROTO


def _amount(p: Parser, name: str, text: str, prefix: str, index: int) -> Decimal:
    """A line's quantity or amount from its text; the field's name is made only when it is
    wrong. An unset message reads as empty text, and either is "required"."""
    if text:
        try:
            value = parse_decimal(text)
        except DecimalFormatError as exc:
            p.add(f"{prefix}.lines[{index}].{name}.value", str(exc))
            return Decimal(0)
        if value >= 0:
            return value
        p.add(f"{prefix}.lines[{index}].{name}", "must not be negative")
    else:
        p.add(f"{prefix}.lines[{index}].{name}", "is required")
    return Decimal(0)


def transaction_from_proto(p: Parser, msg: ppb.Transaction, prefix: str) -> Transaction:
    """Reads a transaction; bad fields are recorded under ``prefix`` ("transaction")."""
    kind = _TXN_TYPE_FROM_PROTO.get(msg.type)
    if kind is None:
        kind = p.enum(msg.type, _TXN_TYPE_FROM_PROTO, f"{prefix}.type")
    occurred = _EPOCH  # stands in for a missing or impossible time, already a violation
    if not msg.HasField("occurred_time"):
        p.add(f"{prefix}.occurred_time", "is required")
    elif (problem := timestamp_error(msg.occurred_time)) is None:
        occurred = from_timestamp(msg.occurred_time)
    else:
        p.add(f"{prefix}.occurred_time", problem)
    if len(msg.lines) > MAX_LINES:
        # Refused without reading a line: a huge transaction costs no more than its check.
        p.add(f"{prefix}.lines", LINES_RULE)
        return Transaction(
            msg.id, msg.member_id, occurred, msg.store_id, kind, (), msg.original_transaction_id
        )
    lines = tuple(
        [
            Line(
                line.sku,
                line.category,
                _amount(p, "quantity", line.quantity.value, prefix, i),
                _amount(p, "amount", line.amount.value, prefix, i),
            )
            for i, line in enumerate(msg.lines)
        ]
    )
    return Transaction(
        msg.id, msg.member_id, occurred, msg.store_id, kind, lines, msg.original_transaction_id
    )


def progress_to_proto(v: ProgressView) -> ppb.Progress:
    """A progress view as its message. Sub-messages are filled in place: made apart and
    passed to the constructor, each is built and then copied (28 µs a view against 15)."""
    standing = v.standing
    primary = standing.primary
    window = v.window
    p = ppb.Progress(
        member_id=v.member_id,
        target_code=v.target_code,
        cycle=window.name,
        cycle_state=cycle_state_to_proto(v.state),
        level=v.level,
        attainment_display=att.display_percent(standing.attainment_percent),
        colour=_COLOUR_TO_PROTO[v.colour],
        complete=standing.complete,
        days_left=v.days_left,
        version=v.version,
    )
    _put_time(p.cycle_start_time, window.start_time)
    _put_time(p.cycle_end_time, window.end_time)
    _put_time(p.grace_end_time, window.grace_end_time)
    for c in standing.criteria:
        item = p.criteria.add(criterion_id=c.criterion_id, kpi=_KPI_BY_ID[c.kpi])
        item.target_value.value = format_decimal(c.target_value)
        item.achieved_value.value = format_decimal(c.achieved)
        item.attainment_percent.value = format_decimal(c.attainment_percent)
        item.remaining_value.value = format_decimal(c.remaining)
    p.target_value.value = format_decimal(primary.target_value)
    p.achieved_value.value = format_decimal(primary.achieved)
    p.remaining_value.value = format_decimal(primary.remaining)
    p.attainment_percent.value = format_decimal(standing.attainment_percent)
    for m in v.milestones:
        status = p.milestones.add(rule_id=m.rule_id, reached=m.reached)
        status.attainment_percent.value = format_decimal(m.attainment_percent)
    nxt = v.next_milestone
    if nxt is not None:
        p.next_milestone.rule_id = nxt.rule_id
        p.next_milestone.reached = nxt.reached
        p.next_milestone.attainment_percent.value = format_decimal(nxt.attainment_percent)
    p.daily_pace_needed.value = format_decimal(v.daily_pace)
    if v.update_time is not None:
        _put_time(p.update_time, v.update_time)
    if v.awards:
        p.awards.extend([award_to_proto(a) for a in v.awards])
    return p


def _put_time(ts: Timestamp, dt: datetime) -> None:
    """`timestamp(dt)` written into a field in place."""
    if dt.tzinfo is None:
        dt = dt.astimezone(UTC)
    delta = dt - _EPOCH
    ts.SetInParent()
    ts.seconds = delta.days * 86_400 + delta.seconds
    ts.nanos = delta.microseconds * 1000


# ---------------------------------------------------------------- awards and the ledger

_AWARD_KIND_TO_PROTO = {
    "POINTS": rpb.AWARD_KIND_POINTS,
    "VOUCHER": rpb.AWARD_KIND_VOUCHER,
    "BADGE": rpb.AWARD_KIND_BADGE,
}
AWARD_KIND_FROM_PROTO = _invert(_AWARD_KIND_TO_PROTO)
_AWARD_STATE_TO_PROTO = {
    "GRANTED": rpb.AWARD_STATE_GRANTED,
    "PENDING": rpb.AWARD_STATE_PENDING,
    "REVERSED": rpb.AWARD_STATE_REVERSED,
}
_LEDGER_KIND_TO_PROTO = {
    "AWARD": rpb.LEDGER_ENTRY_KIND_AWARD,
    "REVERSAL": rpb.LEDGER_ENTRY_KIND_REVERSAL,
    "ADJUSTMENT": rpb.LEDGER_ENTRY_KIND_ADJUSTMENT,
}


def award_to_proto(a: AwardLike, cursor: int | None = None) -> rpb.Award:
    return rpb.Award(
        id=a.id,
        member_id=a.member_id,
        target_code=a.target_code,
        cycle=a.cycle,
        rule_id=a.rule_id,
        milestone_percent=typ.Decimal(value=a.milestone) if a.milestone else None,
        kind=_AWARD_KIND_TO_PROTO[a.kind],
        state=_AWARD_STATE_TO_PROTO[a.state],
        points=a.points,
        program=a.program,
        voucher_pool=a.voucher_pool,
        voucher_code=a.voucher_code,
        badge=a.badge,
        pending_reason=a.pending_reason,
        create_time=timestamp(a.create_time),
        cursor=str(cursor) if cursor is not None else "",
    )


def ledger_to_proto(e: LedgerEntryRow) -> rpb.LedgerEntry:
    return rpb.LedgerEntry(
        id=e.id,
        member_id=e.member_id,
        program=e.program,
        points=e.points,
        kind=_LEDGER_KIND_TO_PROTO[e.kind],
        award_id=e.award_id,
        reason=e.reason,
        create_time=timestamp(e.create_time),
    )
