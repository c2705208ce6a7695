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
from enum import StrEnum

from .errors import Violations
from .frozen import quick_init
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


@quick_init
@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    member_id: str
    occurred_at: datetime
    store_id: str
    type: TransactionType
    lines: tuple[Line, ...]
    original_id: str = ""


# Labels that passed the label check (member, store, SKU and category codes repeat from one
# transaction to the next), so most of a transaction's checks are one set lookup each. Bounded:
# cleared when full.
_GOOD_LABELS: set[str] = set()
_GOOD_LABELS_MAX = 1 << 16


def _good_label(value: str) -> bool:
    """A non-empty label that check_label accepts (remembered when it is)."""
    if value in _GOOD_LABELS:
        return True
    if not value or not label_ok(value):
        return False
    if len(_GOOD_LABELS) >= _GOOD_LABELS_MAX:
        _GOOD_LABELS.clear()
    _GOOD_LABELS.add(value)
    return True


def well_formed(t: Transaction, now: datetime) -> bool:
    """Whether `check_transaction` would find nothing: the quick test every transaction
    takes; only one that fails it is checked again for the reasons."""
    if not (t.id and label_ok(t.id)) or not _good_label(t.member_id):
        return False
    if t.store_id and not _good_label(t.store_id):
        return False
    when = t.occurred_at
    if not EARLIEST <= when < END or when > now + FUTURE_TOLERANCE:
        return False
    if not 0 < len(t.lines) <= MAX_LINES:
        return False
    sale = t.type is TransactionType.SALE
    if sale:
        if t.original_id:
            return False
    elif not t.original_id or t.original_id == t.id or not label_ok(t.original_id):
        return False
    for line in t.lines:
        if not _good_label(line.sku) or (line.category and not _good_label(line.category)):
            return False
        if sale:
            if line.quantity <= 0:
                return False
        elif line.quantity == 0 and line.amount == 0:
            return False
    return True


def check_transaction(v: Violations, t: Transaction, now: datetime, prefix: str = "") -> None:
    """Shape checks that need no database; ``prefix`` is e.g. "transaction."."""
    check_label(v, f"{prefix}id", t.id, required=True)
    check_label(v, f"{prefix}member_id", t.member_id, required=True)
    check_label(v, f"{prefix}store_id", t.store_id)
    if not EARLIEST <= t.occurred_at < END:
        v.add(f"{prefix}occurred_time", YEARS_RULE)
    elif t.occurred_at > now + FUTURE_TOLERANCE:
        v.add(f"{prefix}occurred_time", "is in the future")
    if not t.lines:
        v.add(f"{prefix}lines", "at least one line is required")
    if t.type is TransactionType.SALE and t.original_id:
        v.add(f"{prefix}original_transaction_id", "is only for RETURN transactions")
    if t.type is TransactionType.RETURN:
        if not t.original_id:
            v.add(f"{prefix}original_transaction_id", "is required for a RETURN")
        elif t.original_id == t.id:
            v.add(f"{prefix}original_transaction_id", "a return cannot return itself")
        else:
            check_label(v, f"{prefix}original_transaction_id", t.original_id)
    if len(t.lines) > MAX_LINES:
        # One violation, not one per line: a huge transaction costs no more to refuse.
        v.add(f"{prefix}lines", LINES_RULE)
        return
    for i, line in enumerate(t.lines):
        f = f"{prefix}lines[{i}]"
        check_label(v, f"{f}.sku", line.sku, required=True)
        check_label(v, f"{f}.category", line.category)
        if t.type is TransactionType.SALE and line.quantity <= 0:
            v.add(f"{f}.quantity", "must be greater than 0")
        if t.type is TransactionType.RETURN and line.quantity == 0 and line.amount == 0:
            v.add(f, "returns neither a quantity nor an amount")
