"""Transactions as they arrive (SPEC section 3): validation and the content fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from .errors import Violations
from .kpis import Line
from .validation import check_label

MAX_LINES = 1000
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

    def fingerprint(self) -> str:
        """SHA-256 of the content: the same id with this fingerprint is a duplicate delivery.

        Decimals are normalised first, so "10.0" and "10.00" are the same content. Fields are
        joined with ASCII unit and record separators, which validated labels never contain.
        """
        head = "\x1f".join(
            (
                self.member_id,
                self.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
                self.store_id,
                self.type.value,
                self.original_id,
            )
        )
        body = "\x1e".join(
            f"{ln.sku}\x1f{ln.category}\x1f{_plain(ln.quantity)}\x1f{_plain(ln.amount)}"
            for ln in self.lines
        )
        return hashlib.sha256(f"{head}\x1d{body}".encode()).hexdigest()


def _plain(value: Decimal) -> str:
    # Canonical, not pretty: 10.0 and 10.00 both give "1E+1". Parsed values have at most
    # 28 digits, so the default context normalises them exactly.
    return str(value.normalize())


def check_transaction(v: Violations, t: Transaction, now: datetime, prefix: str = "") -> None:
    """Shape checks that need no database; ``prefix`` is e.g. "transaction."."""
    check_label(v, f"{prefix}id", t.id, required=True)
    check_label(v, f"{prefix}member_id", t.member_id, required=True)
    check_label(v, f"{prefix}store_id", t.store_id)
    if t.occurred_at > now + FUTURE_TOLERANCE:
        v.add(f"{prefix}occurred_time", "is in the future")
    if not t.lines:
        v.add(f"{prefix}lines", "at least one line is required")
    if len(t.lines) > MAX_LINES:
        v.add(f"{prefix}lines", f"at most {MAX_LINES} lines per transaction")
    if t.type is TransactionType.SALE and t.original_id:
        v.add(f"{prefix}original_transaction_id", "is only for RETURN transactions")
    if t.type is TransactionType.RETURN:
        if not t.original_id:
            v.add(f"{prefix}original_transaction_id", "is required for a RETURN")
        elif t.original_id == t.id:
            v.add(f"{prefix}original_transaction_id", "a return cannot return itself")
    for i, line in enumerate(t.lines):
        f = f"{prefix}lines[{i}]"
        check_label(v, f"{f}.sku", line.sku, required=True)
        check_label(v, f"{f}.category", line.category)
        if t.type is TransactionType.SALE and line.quantity <= 0:
            v.add(f"{f}.quantity", "must be greater than 0")
        if t.type is TransactionType.RETURN and line.quantity == 0 and line.amount == 0:
            v.add(f, "returns neither a quantity nor an amount")
