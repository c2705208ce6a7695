"""What became of each recorded transaction: accepted, a duplicate, or refused and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from attain_server.domain.awards import Award as AwardLike
from attain_server.domain.errors import (
    AlreadyExists,
    AttainError,
    FailedPrecondition,
    InvalidArgument,
    quoted,
)
from attain_server.domain.model import TargetDefinition
from attain_server.domain.periods import CycleWindow
from attain_server.domain.progress import ProgressKey, ProgressState
from attain_server.domain.transactions import Transaction


class OutcomeStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"
    REFUSED = "REFUSED"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A progress row as its batch committed it, with what is needed to show it."""

    state: ProgressState
    target: TargetDefinition
    window: CycleWindow
    zone: ZoneInfo
    awards: tuple[AwardLike, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one transaction."""

    transaction_id: str
    status: OutcomeStatus
    # For refusals: the typed error (its reason, message and field violations).
    error: AttainError | None = None
    # Progress rows the transaction changed.
    touched: tuple[ProgressKey, ...] = ()
    # Cycles it was not counted in because they are closed (others did count it).
    closed: tuple[tuple[str, str], ...] = ()
    # Awards its thresholds gave (immediate rules), as written.
    awards: tuple[AwardLike, ...] = ()
    # The touched rows as committed, so a caller can answer without reading them again.
    snapshots: tuple[Snapshot, ...] = ()

    @property
    def reason(self) -> str:
        return self.error.reason if self.error else ""


def refused(t: Transaction, error: AttainError) -> Outcome:
    return Outcome(t.id, OutcomeStatus.REFUSED, error=error)


def invalid(field: str, reason: str, code: str) -> InvalidArgument:
    """One field violation with its own reason code (UNKNOWN_MEMBER, OTHER_MEMBER, ...)."""
    error = InvalidArgument.one(field, reason)
    error.reason = code
    return error


def conflict(t: Transaction) -> Outcome:
    error = AlreadyExists(
        f"transaction {quoted(t.id)} was already recorded with other content",
        reason="TRANSACTION_CONFLICT",
    )
    return refused(t, error)


def unknown_member(t: Transaction) -> Outcome:
    error = invalid("member_id", f"unknown member {quoted(t.member_id)}", "UNKNOWN_MEMBER")
    return refused(t, error)


def cycle_closed(t: Transaction, closed: Sequence[tuple[str, str]]) -> Outcome:
    """Refuses a transaction every cycle of which is closed."""
    names = ", ".join(f"{target} {cycle}" for target, cycle in closed)
    error = FailedPrecondition(
        f"the cycle is closed for {names}: its progress is final", reason="CYCLE_CLOSED"
    )
    return refused(t, error)
