"""Awards and ledger entries as protobuf messages."""

from __future__ import annotations

from attain.v1 import rewards_pb2 as rpb
from attain.v1 import types_pb2 as typ
from attain_server.domain.awards import Award, LedgerEntry

from .mapping import invert, timestamp

_AWARD_KIND_TO_PROTO = {
    "POINTS": rpb.AWARD_KIND_POINTS,
    "VOUCHER": rpb.AWARD_KIND_VOUCHER,
    "BADGE": rpb.AWARD_KIND_BADGE,
}
AWARD_KIND_FROM_PROTO = invert(_AWARD_KIND_TO_PROTO)
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


def award_to_proto(a: Award, cursor: int | None = None) -> rpb.Award:
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


def ledger_to_proto(e: LedgerEntry) -> rpb.LedgerEntry:
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
