"""Awards and ledger entries as plain values: what a member was given, and the points trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ProgressKey = tuple[str, str, str]  # (target_code, cycle, member_id)


@dataclass(slots=True)
class Award:
    """One award (the `award` table's columns). Mutable: a unit of work draws its voucher
    code or reverses it before the award is written."""

    brand_code: str
    id: str
    target_code: str
    cycle: str
    member_id: str
    rule_id: str
    milestone: str
    kind: str
    state: str
    points: int
    program: str
    voucher_pool: str
    voucher_code: str
    badge: str
    pending_reason: str
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One append-only entry of a member's points in a program."""

    brand_code: str
    id: str
    member_id: str
    program: str
    points: int
    kind: str
    award_id: str
    request_id: str
    reason: str
    create_time: datetime
