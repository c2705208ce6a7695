"""Transactions as they arrive (SPEC section 3) and their shape checks.

A delivery of a known id is a duplicate when its content equals the stored one: decimals
compare by value and instants by instant (the dataclass equality does both).

The shape checks run before a transaction reaches the database, so that nothing a brand
sends can fail a statement: every string is a label (non-blank, trimmed, no control
characters, at most the 128 characters its column holds), a transaction has at most
MAX_LINES lines, and it happened in the supported years."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from .decimals import DecimalFormatError, parse_decimal
from .errors import Violations
from .kpis import Line
from .periods import EARLIEST_DAY, LATEST_DAY
from .validation import check_label, label_ok

MAX_LINES = 1000
LINES_RULE = f"at most {MAX_LINES} lines per transaction"
# The years Attain supports, inclusive: transactions (by their UTC instant) and target periods
# alike (periods.EARLIEST_DAY..LATEST_DAY). Past these, a brand's local time or a cycle's
# arithmetic could leave what a datetime holds (years 1 to 9999); no real sale falls outside.
MIN_YEAR = EARLIEST_DAY.year
MAX_YEAR = LATEST_DAY.year
EARLIEST = datetime.combine(EARLIEST_DAY, time(), UTC)
END = datetime.combine(LATEST_DAY + timedelta(days=1), time(), UTC)  # the first instant past
YEARS_RULE = f"must be in the years {MIN_YEAR} to {MAX_YEAR}"
# Clocks drift; a sale stamped a little ahead of ours is still a real sale.
FUTURE_TOLERANCE = timedelta(minutes=5)


class TransactionType(StrEnum):
    SALE = "SALE"
    RETURN = "RETURN"


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    member_id: str
    occurred_at: datetime
    store_id: str
    type: TransactionType
    lines: tuple[Line, ...]
    original_id: str = ""


class NegativeAmount(DecimalFormatError):
    """A line's quantity or amount that reads well but is below zero."""


def parse_amount(text: str) -> Decimal:
    """A line's quantity or amount from its text: an exact decimal of the one grammar
    (`parse_decimal`), not below zero. Every front end reads line amounts with it.

    Raises DecimalFormatError ("is required" for empty text, else what is malformed) or
    its NegativeAmount, so that a front end may name the two at different fields."""
    value = parse_decimal(text)
    if value < 0:
        raise NegativeAmount("must not be negative")
    return value


def check_transaction(v: Violations, t: Transaction, now: datetime) -> None:
    """Shape checks that need no database, under the transaction's own field names
    (``member_id``, ``lines[0].sku``): each front end maps them to its own.

    Every transaction takes them and most pass: each value gets the quick test of its rule
    (`label_ok`), and only one that fails it is checked again for the reason, under a field
    name built then."""
    if not (t.id and label_ok(t.id)):
        check_label(v, "id", t.id, required=True)
    if not (t.member_id and label_ok(t.member_id)):
        check_label(v, "member_id", t.member_id, required=True)
    if t.store_id and not label_ok(t.store_id):
        check_label(v, "store_id", t.store_id)
    if not EARLIEST <= t.occurred_at < END:
        v.add("occurred_time", YEARS_RULE)
    elif t.occurred_at > now + FUTURE_TOLERANCE:
        v.add("occurred_time", "is in the future")
    if not t.lines:
        v.add("lines", "at least one line is required")
    sale = t.type is TransactionType.SALE
    if sale:
        if t.original_id:
            v.add("original_transaction_id", "is only for RETURN transactions")
    elif not (t.original_id and t.original_id != t.id and label_ok(t.original_id)):
        _check_original(v, "original_transaction_id", t)
    if len(t.lines) > MAX_LINES:
        # One violation, not one per line: a huge transaction costs no more to refuse.
        v.add("lines", LINES_RULE)
        return
    for i, line in enumerate(t.lines):
        if not _line_ok(line, sale):
            _check_line(v, f"lines[{i}]", line, sale)


def _check_original(v: Violations, field: str, t: Transaction) -> None:
    """A return's original transaction id."""
    if not t.original_id:
        v.add(field, "is required for a RETURN")
    elif t.original_id == t.id:
        v.add(field, "a return cannot return itself")
    else:
        check_label(v, field, t.original_id)


def _line_ok(line: Line, sale: bool) -> bool:
    """The quick test of `_check_line`: True when it would find nothing."""
    if not (line.sku and label_ok(line.sku)) or (line.category and not label_ok(line.category)):
        return False
    return line.quantity > 0 if sale else line.quantity != 0 or line.amount != 0


def _check_line(v: Violations, field: str, line: Line, sale: bool) -> None:
    check_label(v, f"{field}.sku", line.sku, required=True)
    check_label(v, f"{field}.category", line.category)
    if sale and line.quantity <= 0:
        v.add(f"{field}.quantity", "must be greater than 0")
    if not sale and line.quantity == 0 and line.amount == 0:
        v.add(field, "returns neither a quantity nor an amount")
