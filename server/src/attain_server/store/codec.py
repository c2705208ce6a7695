"""Target definitions as JSON documents for storage: decimals as strings, dates as ISO text."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, cast

from attain_server.domain.model import (
    Audience,
    AudienceKind,
    Criterion,
    CriterionFilter,
    FixedSpec,
    Incentive,
    IncentiveKind,
    Kpi,
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
    TargetDefinition,
)

# Bump when the document's shape changes; from_document upgrades older shapes.
SCHEMA_VERSION = 1


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _undec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _incentive(i: Incentive) -> dict[str, Any]:
    return {
        "kind": i.kind.value,
        "points": i.points,
        "voucher_pool": i.voucher_pool,
        "badge": i.badge,
    }


def _unincentive(d: dict[str, Any]) -> Incentive:
    return Incentive(
        kind=IncentiveKind(d["kind"]),
        points=int(d.get("points", 0)),
        voucher_pool=d.get("voucher_pool", ""),
        badge=d.get("badge", ""),
    )


def _spec(spec: RuleSpec) -> dict[str, Any]:
    if isinstance(spec, FixedSpec):
        return {
            "kind": "FIXED",
            "threshold_percent": _dec(spec.threshold_percent),
            "incentive": _incentive(spec.incentive),
        }
    if isinstance(spec, PercentageSpec):
        return {"kind": "PERCENTAGE", "percent": _dec(spec.percent)}
    if isinstance(spec, PerXSpec):
        return {"kind": "PER_X", "every": _dec(spec.every), "points": spec.points}
    return {
        "kind": "MILESTONES",
        "milestones": [
            {"attainment_percent": _dec(m.attainment_percent), "incentive": _incentive(m.incentive)}
            for m in spec.milestones
        ],
    }


def _unspec(d: dict[str, Any]) -> RuleSpec:
    kind = d["kind"]
    if kind == "FIXED":
        return FixedSpec(
            incentive=_unincentive(d["incentive"]),
            threshold_percent=Decimal(d["threshold_percent"]),
        )
    if kind == "PERCENTAGE":
        return PercentageSpec(percent=Decimal(d["percent"]))
    if kind == "PER_X":
        return PerXSpec(every=Decimal(d["every"]), points=int(d["points"]))
    return MilestonesSpec(
        milestones=tuple(
            Milestone(Decimal(m["attainment_percent"]), _unincentive(m["incentive"]))
            for m in d["milestones"]
        )
    )


def to_document(d: TargetDefinition) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "code": d.code,
        "display_name": d.display_name,
        "description": d.description,
        "criteria": [
            {
                "id": c.id,
                "kpi": c.kpi.value,
                "target_value": _dec(c.target_value),
                "level_target_values": {k: _dec(v) for k, v in c.level_target_values.items()},
                "filter": {
                    "skus": list(c.filter.skus),
                    "categories": list(c.filter.categories),
                    "stores": list(c.filter.stores),
                    "min_transaction_amount": _dec(c.filter.min_transaction_amount),
                    "min_transaction_quantity": _dec(c.filter.min_transaction_quantity),
                },
            }
            for c in d.criteria
        ],
        "period": {
            "kind": d.period.kind.value,
            "start_date": d.period.start_date.isoformat(),
            "end_date": d.period.end_date.isoformat() if d.period.end_date else None,
            "every_n_days": d.period.every_n_days,
        },
        "offset_days": d.offset_days,
        "audience": {
            "kind": d.audience.kind.value,
            "groups": list(d.audience.groups),
            "member_ids": list(d.audience.member_ids),
        },
        "rules": [
            {
                "id": r.id,
                "program": r.program,
                "min_attainment_percent": _dec(r.min_attainment_percent),
                "cap_points": r.cap_points,
                "levels": list(r.levels),
                "reversal_policy": r.reversal_policy.value,
                "rounding": r.rounding.value,
                "spec": _spec(r.spec),
            }
            for r in d.rules
        ],
    }


def from_document(doc: dict[str, Any]) -> TargetDefinition:

    period = doc["period"]
    audience = doc["audience"]
    return TargetDefinition(
        code=doc["code"],
        display_name=doc.get("display_name", ""),
        description=doc.get("description", ""),
        criteria=tuple(
            Criterion(
                id=c["id"],
                kpi=Kpi(c["kpi"]),
                target_value=Decimal(c["target_value"]),
                level_target_values={k: Decimal(v) for k, v in c["level_target_values"].items()},
                filter=CriterionFilter(
                    skus=tuple(c["filter"]["skus"]),
                    categories=tuple(c["filter"]["categories"]),
                    stores=tuple(c["filter"]["stores"]),
                    min_transaction_amount=_undec(c["filter"]["min_transaction_amount"]),
                    min_transaction_quantity=_undec(c["filter"]["min_transaction_quantity"]),
                ),
            )
            for c in doc["criteria"]
        ),
        period=Period(
            kind=PeriodKind(period["kind"]),
            start_date=date.fromisoformat(period["start_date"]),
            end_date=date.fromisoformat(period["end_date"]) if period["end_date"] else None,
            every_n_days=int(period["every_n_days"]),
        ),
        offset_days=int(doc["offset_days"]),
        audience=Audience(
            kind=AudienceKind(audience["kind"]),
            groups=tuple(audience["groups"]),
            member_ids=tuple(audience["member_ids"]),
        ),
        rules=tuple(
            RewardRule(
                id=r["id"],
                spec=_unspec(r["spec"]),
                program=r["program"],
                min_attainment_percent=Decimal(r["min_attainment_percent"]),
                cap_points=cast(int | None, r["cap_points"]),
                levels=tuple(r["levels"]),
                reversal_policy=ReversalPolicy(r["reversal_policy"]),
                rounding=Rounding(r["rounding"]),
            )
            for r in doc["rules"]
        ),
    )
