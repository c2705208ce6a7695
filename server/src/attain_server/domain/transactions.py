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
from .kpis import Line
from .periods import EARLIEST_DAY, LATEST_DAY
from .validation import label_error

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


def check_transaction(v: Violations, t: Transaction, now: datetime, prefix: str = "") -> None:
    """Shape checks that need no database; ``prefix`` is e.g. "transaction.".

    Every transaction takes them and most pass: a field's name is only built for a value
    that fails, so a good transaction costs little more than reading its values once."""
    _check_label(v, prefix, "id", t.id, required=True)
    _check_label(v, prefix, "member_id", t.member_id, required=True)
    _check_label(v, prefix, "store_id", t.store_id)
    if not EARLIEST <= t.occurred_at < END:
        v.add(f"{prefix}occurred_time", YEARS_RULE)
    elif t.occurred_at > now + FUTURE_TOLERANCE:
        v.add(f"{prefix}occurred_time", "is in the future")
    if not t.lines:
        v.add(f"{prefix}lines", "at least one line is required")
    sale = t.type is TransactionType.SALE
    if sale and t.original_id:
        v.add(f"{prefix}original_transaction_id", "is only for RETURN transactions")
    if not sale:
        if not t.original_id:
            v.add(f"{prefix}original_transaction_id", "is required for a RETURN")
        elif t.original_id == t.id:
            v.add(f"{prefix}original_transaction_id", "a return cannot return itself")
        else:
            _check_label(v, prefix, "original_transaction_id", t.original_id)
    if len(t.lines) > MAX_LINES:
        # One violation, not one per line: a huge transaction costs no more to refuse.
        v.add(f"{prefix}lines", LINES_RULE)
        return
    for i, line in enumerate(t.lines):
        for suffix, reason in _line_problems(line, sale):
            v.add(f"{prefix}lines[{i}]{suffix}", reason)


def _label_problem(value: str, *, required: bool = False) -> str | None:
    """What `check_label` would say of `value`, or None."""
    if not value:
        return "is required" if required else None
    return label_error(value)


def _check_label(
    v: Violations, prefix: str, name: str, value: str, *, required: bool = False
) -> None:
    reason = _label_problem(value, required=required)
    if reason is not None:
        v.add(f"{prefix}{name}", reason)


def _line_problems(line: Line, sale: bool) -> list[tuple[str, str]]:
    """What is wrong with one line, as (field suffix, reason) pairs; empty for a good one."""
    problems = []
    if (reason := _label_problem(line.sku, required=True)) is not None:
        problems.append((".sku", reason))
    if (reason := _label_problem(line.category)) is not None:
        problems.append((".category", reason))
    if sale and line.quantity <= 0:
        problems.append((".quantity", "must be greater than 0"))
    if not sale and line.quantity == 0 and line.amount == 0:
        problems.append(("", "returns neither a quantity nor an amount"))
    return problems
