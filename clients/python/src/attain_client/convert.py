"""Exact conversions between Python values and attain.v1 messages.

Decimals travel as `attain.v1.Decimal` strings and never pass through a float; instants are
`google.protobuf.Timestamp` and come back as aware UTC datetimes. `plain()` turns any message
into plain Python data (Decimal, datetime, enum names), which is also what `--json` prints.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import types_pb2

DecimalLike = Decimal | int | str


def decimal(value: DecimalLike) -> types_pb2.Decimal:
    """An `attain.v1.Decimal` from a Decimal, an int or a decimal string. Floats are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(
            f"expected Decimal, int or str, got {type(value).__name__}: "
            "floats are inexact, pass Decimal('12.50') or '12.50'"
        )
    try:
        exact = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not exact.is_finite():
        raise ValueError(f"not a finite decimal number: {value!r}")
    return types_pb2.Decimal(value=format(exact, "f"))


def to_decimal(message: types_pb2.Decimal) -> Decimal | None:
    """The exact value of an `attain.v1.Decimal`; None when it is unset (empty)."""
    return Decimal(message.value) if message.value else None


def timestamp(when: datetime) -> Timestamp:
    """A Timestamp from an aware datetime (a naive one is refused: its zone is unknown)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when.isoformat()}: give it a time zone")
    out = Timestamp()
    out.FromDatetime(when.astimezone(UTC))
    return out


def to_datetime(message: Timestamp) -> datetime | None:
    """An aware UTC datetime from a Timestamp; None when it is unset."""
    if message.seconds == 0 and message.nanos == 0:
        return None
    return message.ToDatetime(tzinfo=UTC)


def to_date(value: str) -> date | None:
    """A local calendar date from an ISO string field (`*_date`); None when empty."""
    return date.fromisoformat(value) if value else None


def plain(message: Message) -> dict[str, Any]:
    """Plain Python data of a message: Decimal for decimals, aware datetimes for instants,
    enum value names, lists and dicts. Scalars and lists appear with their defaults (false,
    0, "", []), so scripts need not guess; unset messages and unset oneof members are left
    out."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.has_presence and not message.HasField(field.name):
            continue
        out[field.name] = _plain_field(cast(FieldDescriptor, field), getattr(message, field.name))
    return out


def _plain_field(field: FieldDescriptor, value: Any) -> Any:
    if field.is_repeated:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            return {k: _plain_value(value_field, v) for k, v in value.items()}
        return [_plain_value(field, item) for item in value]
    return _plain_value(field, value)


def _plain_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
        full_name = field.message_type.full_name
        if full_name == "attain.v1.Decimal":
            return to_decimal(value)
        if full_name == "google.protobuf.Timestamp":
            return to_datetime(value)
        return plain(value)
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        number = int(value)
        named = field.enum_type.values_by_number.get(number)
        return named.name if named is not None else number
    return value


def json_default(value: Any) -> Any:
    """`json.dumps(..., default=json_default)`: decimals as exact strings, instants in ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
