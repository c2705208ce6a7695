"""Transactions and progress between protobuf and domain."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import progress_pb2 as ppb
from attain.v1 import types_pb2 as typ
from attain_server.application.standings import ProgressView
from attain_server.domain import attainment as att
from attain_server.domain.decimals import DecimalFormatError, format_decimal
from attain_server.domain.errors import AttainError
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import (
    LINES_RULE,
    MAX_LINES,
    NegativeAmount,
    Transaction,
    TransactionType,
    parse_amount,
)

from .errors import named_under
from .mapping import (
    EPOCH,
    KPI_TO_PROTO,
    Parser,
    cycle_state_to_proto,
    from_timestamp,
    timestamp_error,
)
from .reward_mapping import award_to_proto

_TXN_TYPE_FROM_PROTO = {
    ppb.TRANSACTION_TYPE_SALE: TransactionType.SALE,
    ppb.TRANSACTION_TYPE_RETURN: TransactionType.RETURN,
}
_COLOUR_TO_PROTO = {
    att.Colour.RED: typ.COLOUR_RED,
    att.Colour.ORANGE: typ.COLOUR_ORANGE,
    att.Colour.GREEN: typ.COLOUR_GREEN,
}
_KPI_BY_ID = KPI_TO_PROTO


# RecordTransaction names a field by its path in the request; the domain and a stream's
# refusals name it within the transaction ("member_id", "lines[0].amount").
REQUEST_OBJECT = "transaction"


def request_field(field: str) -> str:
    """A transaction's field as RecordTransaction's request names it: the one mapping from
    the domain's field names to the request's."""
    return f"{REQUEST_OBJECT}.{field}"


def request_error(error: AttainError) -> AttainError:
    """``error`` with each field violation named as in the request; other errors as they are."""
    return named_under(REQUEST_OBJECT, error)


def _amount(p: Parser, name: str, text: str, index: int) -> Decimal:
    """A line's quantity or amount from its text; the field's name is made only when it is
    wrong. An unset message reads as empty text, and either is "required"."""
    try:
        return parse_amount(text)
    except NegativeAmount as exc:
        p.add(f"lines[{index}].{name}", str(exc))
    except DecimalFormatError as exc:
        # Malformed text is named at the message's `value`; a missing one at the field.
        p.add(f"lines[{index}].{name}.value" if text else f"lines[{index}].{name}", str(exc))
    return Decimal(0)


def transaction_from_proto(p: Parser, msg: ppb.Transaction) -> Transaction:
    """Reads a transaction; bad fields are recorded under their names within it
    (`request_field` names them as in a request)."""
    kind = _TXN_TYPE_FROM_PROTO.get(msg.type)
    if kind is None:
        kind = p.enum(msg.type, _TXN_TYPE_FROM_PROTO, "type")
    occurred = EPOCH  # stands in for a missing or impossible time, already a violation
    if not msg.HasField("occurred_time"):
        p.add("occurred_time", "is required")
    elif (problem := timestamp_error(msg.occurred_time)) is None:
        occurred = from_timestamp(msg.occurred_time)
    else:
        p.add("occurred_time", problem)
    if len(msg.lines) > MAX_LINES:
        # Refused without reading a line: a huge transaction costs no more than its check.
        p.add("lines", LINES_RULE)
        return Transaction(
            msg.id, msg.member_id, occurred, msg.store_id, kind, (), msg.original_transaction_id
        )
    lines = tuple(
        [
            Line(
                line.sku,
                line.category,
                _amount(p, "quantity", line.quantity.value, i),
                _amount(p, "amount", line.amount.value, i),
            )
            for i, line in enumerate(msg.lines)
        ]
    )
    return Transaction(
        msg.id, msg.member_id, occurred, msg.store_id, kind, lines, msg.original_transaction_id
    )


def progress_to_proto(v: ProgressView) -> ppb.Progress:
    """A progress view as its message. Sub-messages are filled in place: made apart and
    passed to the constructor, each is built and then copied (about twice the time)."""
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
    delta = dt - EPOCH
    ts.SetInParent()
    ts.seconds = delta.days * 86_400 + delta.seconds
    ts.nanos = delta.microseconds * 1000
