"""Targets between protobuf and domain: definitions (criteria, period, audience, rules) and
target values. Parsing collects every bad field at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.domain.decimals import format_decimal
from attain_server.domain.model import (
    Audience,
    AudienceKind,
    Criterion,
    CriterionFilter,
    FixedSpec,
    Incentive,
    IncentiveKind,
    Milestone,
    MilestonesSpec,
    PercentageSpec,
    Period,
    PeriodKind,
    PerXSpec,
    ReversalPolicy,
    RewardRule,
    Rounding,
    RuleSpec,
    Target,
    TargetDefinition,
    TargetState,
    TargetValue,
)
from attain_server.domain.validation import (
    MAX_CRITERIA,
    MAX_LEVELS,
    MAX_MILESTONES,
    MAX_RULES,
    level_value_field,
    too_many,
)

from .mapping import KPI_TO_PROTO, Parser, dec, invert, timestamp

_PERIOD_TO_PROTO = {k: typ.PeriodKind.Value(f"PERIOD_KIND_{k.value}") for k in PeriodKind}
_AUDIENCE_TO_PROTO = {k: tpb.AudienceKind.Value(f"AUDIENCE_KIND_{k.value}") for k in AudienceKind}
_REVERSAL_TO_PROTO = {
    k: tpb.ReversalPolicy.Value(f"REVERSAL_POLICY_{k.value}") for k in ReversalPolicy
}
_ROUNDING_TO_PROTO = {k: tpb.Rounding.Value(f"ROUNDING_{k.value}") for k in Rounding}
_STATE_TO_PROTO = {k: tpb.TargetState.Value(f"TARGET_STATE_{k.value}") for k in TargetState}
_KPI_FROM_PROTO = invert(KPI_TO_PROTO)
_PERIOD_FROM_PROTO = invert(_PERIOD_TO_PROTO)
_AUDIENCE_FROM_PROTO = invert(_AUDIENCE_TO_PROTO)
_REVERSAL_FROM_PROTO = invert(_REVERSAL_TO_PROTO)
_ROUNDING_FROM_PROTO = invert(_ROUNDING_TO_PROTO)


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


def _criteria(p: Parser, items: Sequence[tpb.Criterion]) -> tuple[Criterion, ...]:
    # Lists past their limits are refused before their items are parsed one by one: a
    # request of 4 MB can hold hundreds of thousands, and the event loop is everyone's.
    if too_many(p.violations, "criteria", items, MAX_CRITERIA, "criteria"):
        return ()
    out = []
    for i, c in enumerate(items):
        f = f"criteria[{i}]"
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


def _period(p: Parser, msg: tpb.Period) -> Period:
    f = "period"
    kind = p.enum(msg.kind, _PERIOD_FROM_PROTO, f"{f}.kind")
    start = p.date(msg.start_date, f"{f}.start_date")
    end = p.date(msg.end_date, f"{f}.end_date", required=False)
    return Period(kind, start or date(2000, 1, 1), end, msg.every_n_days)


def _audience(p: Parser, msg: tpb.Audience) -> Audience:
    if msg.kind == tpb.AUDIENCE_KIND_UNSPECIFIED and not msg.groups and not msg.member_ids:
        return Audience()
    kind = p.enum(msg.kind, _AUDIENCE_FROM_PROTO, "audience.kind")
    return Audience(kind, tuple(msg.groups), tuple(msg.member_ids))


def _rules(p: Parser, items: Sequence[tpb.RewardRule]) -> tuple[RewardRule, ...]:
    if too_many(p.violations, "rules", items, MAX_RULES, "rules"):
        return ()
    out = []
    for i, r in enumerate(items):
        f = f"rules[{i}]"
        spec = _rule_spec(p, r, f)
        if spec is None:
            continue
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


def _rule_spec(p: Parser, r: tpb.RewardRule, f: str) -> RuleSpec | None:
    """The rule's kind and its settings; None when its milestones are too many to read."""
    which = r.WhichOneof("kind")
    if which == "fixed":
        return FixedSpec(
            incentive=_incentive(p, r.fixed.incentive, f"{f}.fixed.incentive"),
            threshold_percent=p.optional_decimal(
                r.fixed, "threshold_percent", f"{f}.fixed.threshold_percent"
            )
            or Decimal(100),
        )
    if which == "percentage":
        return PercentageSpec(percent=p.decimal(r.percentage.percent, f"{f}.percentage.percent"))
    if which == "per_x":
        return PerXSpec(every=p.decimal(r.per_x.every, f"{f}.per_x.every"), points=r.per_x.points)
    if which == "milestones":
        listed = r.milestones.milestones
        field = f"{f}.milestones.milestones"
        if too_many(p.violations, field, listed, MAX_MILESTONES, "milestones"):
            return None
        return MilestonesSpec(
            tuple(
                Milestone(
                    p.decimal(m.attainment_percent, f"{field}[{j}].attainment_percent"),
                    _incentive(p, m.incentive, f"{field}[{j}].incentive"),
                )
                for j, m in enumerate(listed)
            )
        )
    p.add(f, "set one rule kind: fixed, percentage, per_x or milestones")
    return PercentageSpec(Decimal(1))


_FIELD_PARSERS: dict[str, Callable[[Parser, tpb.Target], Any]] = {
    "display_name": lambda p, t: t.display_name,
    "description": lambda p, t: t.description,
    "criteria": lambda p, t: _criteria(p, t.criteria),
    "period": lambda p, t: _period(p, t.period),
    "offset_days": lambda p, t: t.offset_days,
    "audience": lambda p, t: _audience(p, t.audience),
    "rules": lambda p, t: _rules(p, t.rules),
}
TARGET_FIELDS = tuple(_FIELD_PARSERS)


def target_fields(p: Parser, msg: tpb.Target, fields: Iterable[str]) -> dict[str, Any]:
    """The named definition fields of ``msg`` as domain values (for UpdateTarget masks); bad
    fields are recorded under their names within the target, as the domain names them."""
    return {name: _FIELD_PARSERS[name](p, msg) for name in fields}


def target_definition(p: Parser, msg: tpb.Target) -> TargetDefinition:
    fields = target_fields(p, msg, TARGET_FIELDS)
    return TargetDefinition(code=msg.code, **fields)


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
                kpi=KPI_TO_PROTO[c.kpi],
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
