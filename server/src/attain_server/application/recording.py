"""Placing a batch's sales and returns into progress states, in memory: nothing here waits.

Each transaction is applied whole or refused whole; a refused one changes no state."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from attain_server.domain.errors import InvalidArgument, quoted
from attain_server.domain.kpis import Line, ReturnError, Sale, contribution, net_lines
from attain_server.domain.model import Member, RewardRule, TargetState
from attain_server.domain.periods import CycleState, CycleWindow
from attain_server.domain.progress import ProgressKey, ProgressState, new_state
from attain_server.domain.rewards import Due, could_pay, immediate_due
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.transactions import StoredTransaction

from .catalog import ActiveTarget
from .outcomes import (
    Outcome,
    OutcomeStatus,
    conflict,
    cycle_closed,
    invalid,
    refused,
    unknown_member,
)

# Per sale (by its position in the batch): the targets whose audience has its member, each
# with the cycle the sale falls in.
Placement = dict[int, list[tuple[ActiveTarget, CycleWindow]]]


@dataclass(slots=True)
class BatchSale:
    """A sale as the batch sees it: stored, or accepted earlier in this batch."""

    id: str
    member_id: str
    occurred_at: datetime
    store_id: str
    lines: tuple[Line, ...]
    net: tuple[Line, ...]
    counted_in: list[tuple[str, str]]
    is_new: bool
    net_changed: bool = False

    def as_sale(self, lines: tuple[Line, ...]) -> Sale:
        return Sale(self.id, self.occurred_at, self.store_id, lines)


def stored_sale(r: StoredTransaction) -> BatchSale:
    return BatchSale(
        r.id,
        r.member_id,
        r.occurred_at,
        r.store_id,
        r.lines,
        r.net_lines or r.lines,
        list(r.counted_in),
        is_new=False,
    )


def same_content(stored: StoredTransaction, t: Transaction) -> bool:
    """Exact comparison of a stored transaction with a delivered one: decimals by value and
    instants by instant, so "10.0" at +07:00 is the same delivery as "10.00" at that UTC
    instant."""
    return (
        stored.member_id == t.member_id
        and stored.occurred_at == t.occurred_at
        and stored.store_id == t.store_id
        and stored.type is t.type
        and stored.original_id == t.original_id
        and stored.lines == t.lines
    )


@dataclass(slots=True)
class Dues:
    """The thresholds one sale reached on one row for one rule."""

    transaction_id: str
    key: ProgressKey
    rule: RewardRule
    due: list[Due]


def place(
    txns: Sequence[Transaction],
    members: dict[str, Member],
    targets: dict[str, ActiveTarget],
    sales: dict[str, BatchSale],
) -> tuple[Placement, set[ProgressKey]]:
    """Where each sale counts (`Placement`), and every progress row the batch could touch."""
    active = [t for t in targets.values() if t.state is TargetState.ACTIVE]
    keys: set[ProgressKey] = set()
    placed: Placement = {}
    for i, t in enumerate(txns):
        if t.type is TransactionType.SALE and t.member_id in members:
            member = members[t.member_id]
            where = placed[i] = []
            for target in active:
                if target.definition.audience.includes(member):
                    window = target.calendar.cycle_at(t.occurred_at)
                    if window is not None:
                        where.append((target, window))
                        keys.add((target.code, window.name, t.member_id))
        elif t.type is TransactionType.RETURN and t.original_id in sales:
            original = sales[t.original_id]
            # A target left out (unusable) has no rows to take the return from.
            keys.update(
                (tc, cy, original.member_id) for tc, cy in original.counted_in if tc in targets
            )
    return placed, keys


@dataclass(slots=True)
class Applier:
    """Applies one transaction to the batch's in-memory state, or refuses it untouched."""

    now: datetime
    zone: ZoneInfo
    targets: dict[str, ActiveTarget]
    progress: dict[ProgressKey, ProgressState]
    member_values: dict[ProgressKey, dict[str, Decimal]]
    sales: dict[str, BatchSale]
    states: dict[tuple[str, str], CycleState] = dataclasses.field(default_factory=dict)
    # What the sales crossed, in order; given once the loop is done.
    dues: list[Dues] = dataclasses.field(default_factory=list)

    def apply(
        self,
        txns: Sequence[Transaction],
        stored: dict[str, StoredTransaction],
        members: dict[str, Member],
        placed: Placement,
    ) -> tuple[list[Outcome], list[Transaction]]:
        """Each transaction's outcome, in order, with its sale or return applied when it is
        new; and the transactions accepted."""
        outcomes: list[Outcome] = []
        seen: dict[str, Transaction] = {}  # accepted earlier in this batch, by id
        accepted: list[Transaction] = []
        for i, t in enumerate(txns):
            previous = seen.get(t.id)
            if previous is not None or t.id in stored:
                same = previous == t if previous is not None else same_content(stored[t.id], t)
                outcomes.append(Outcome(t.id, OutcomeStatus.DUPLICATE) if same else conflict(t))
                continue
            who = members.get(t.member_id)
            if who is None:
                outcomes.append(unknown_member(t))
                continue
            if t.type is TransactionType.SALE:
                outcome = self.sale(t, who, placed[i])
            else:
                outcome = self.return_(t)
            outcomes.append(outcome)
            if outcome.status is OutcomeStatus.ACCEPTED:
                seen[t.id] = t
                accepted.append(t)
        return outcomes, accepted

    def sale(
        self, t: Transaction, member: Member, placed: list[tuple[ActiveTarget, CycleWindow]]
    ) -> Outcome:
        """`placed`: the targets whose audience has the member, each with the sale's cycle."""
        counted: list[tuple[ActiveTarget, CycleWindow]] = []
        closed: list[tuple[str, str]] = []
        for target, window in placed:
            if self._state_of(target.code, window) is CycleState.CLOSED:
                closed.append((target.code, window.name))
            else:
                counted.append((target, window))
        if closed and not counted:
            return cycle_closed(t, closed)
        # The transaction is the sale: its lines are its net lines, and placing it in its
        # cycles checked that its instant is aware.
        touched = []
        for target, window in counted:
            key = (target.code, window.name, t.member_id)
            state = self._state(key, member.level)
            tallies = state.tallies
            for c in target.definition.criteria:
                tallies[c.id].add(contribution(c, t, self.zone))
            state.changed()
            if target.immediate:
                self._reward(t, target, state)
            touched.append(key)
        self.sales[t.id] = BatchSale(
            t.id,
            t.member_id,
            t.occurred_at,
            t.store_id,
            t.lines,
            t.lines,
            [(target.code, w.name) for target, w in counted],
            is_new=True,
        )
        return Outcome(t.id, OutcomeStatus.ACCEPTED, touched=tuple(touched), closed=tuple(closed))

    def return_(self, t: Transaction) -> Outcome:
        original = self.sales.get(t.original_id)
        if original is None:
            return refused(t, _no_original(t))
        if original.member_id != t.member_id:
            return refused(t, _other_member(t))
        try:
            new_net = net_lines(original.net, t.lines)
        except ReturnError as exc:
            return refused(t, invalid(exc.field, str(exc), "RETURN_EXCEEDS_SALE"))
        open_keys: list[tuple[ActiveTarget, ProgressKey]] = []
        closed: list[tuple[str, str]] = []
        for target_code, cycle in original.counted_in:
            target = self.targets.get(target_code)
            if target is None:  # the target was deleted: nothing left to adjust
                continue
            if self._state_of(target_code, self._window(target_code, cycle)) is CycleState.CLOSED:
                closed.append((target_code, cycle))
            else:
                open_keys.append((target, (target_code, cycle, t.member_id)))
        if closed and not open_keys:
            return cycle_closed(t, closed)
        touched = self._take_back(original, new_net, open_keys)
        original.net = new_net
        original.net_changed = True
        return Outcome(t.id, OutcomeStatus.ACCEPTED, touched=tuple(touched), closed=tuple(closed))

    def _take_back(
        self,
        original: BatchSale,
        new_net: tuple[Line, ...],
        open_keys: list[tuple[ActiveTarget, ProgressKey]],
    ) -> list[ProgressKey]:
        """Replaces the sale's contribution by that of its new net lines, in every open row."""
        before = original.as_sale(original.net)
        after = original.as_sale(new_net)
        touched = []
        for target, key in open_keys:
            state = self.progress.get(key)
            if state is None:  # pragma: no cover - a counted sale always has its row
                continue
            for c in target.definition.criteria:
                state.tallies[c.id].apply(
                    contribution(c, before, self.zone), contribution(c, after, self.zone)
                )
            # A return never gives an award, and taking one back is a cycle-close matter.
            state.changed()
            touched.append(key)
        return touched

    def _reward(self, t: Transaction, target: ActiveTarget, state: ProgressState) -> None:
        """Immediate rules pay in the same transaction as the write that crosses them. Only
        rules that can pay at the row's tallies (`could_pay`) need its standing; most sales
        cross nothing, and their rows' standings are computed once, when the batch writes
        them."""
        tallies, values, level = state.tallies, state.target_values, state.level
        pairs = [(tallies[c.id].value(c.kpi), values[c.id]) for c in target.definition.criteria]
        payable = [rule for rule, pct in target.gates if could_pay(rule, pct, level, pairs)]
        if not payable:
            return
        # Standing after this very sale: immediate awards belong to the crossing one.
        standing = state.restate(target.definition)
        for rule in payable:
            due = immediate_due(rule, standing, level)
            if due:
                self.dues.append(Dues(t.id, state.key, rule, due))

    def _state(self, key: ProgressKey, level: str) -> ProgressState:
        state = self.progress.get(key)
        if state is None:
            target = self.targets[key[0]].definition
            state = new_state(target, key, level, self.member_values.get(key, {}))
            self.progress[key] = state
        return state

    def _window(self, target_code: str, cycle: str) -> CycleWindow:
        return self.targets[target_code].calendar.cycle_named(cycle)

    def _state_of(self, target_code: str, window: CycleWindow) -> CycleState:
        """The cycle's state at the batch's `now` (asked once per cycle of the batch)."""
        key = (target_code, window.name)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = window.state_at(self.now)
        return state


def _no_original(t: Transaction) -> InvalidArgument:
    return invalid(
        "original_transaction_id",
        f"no sale {quoted(t.original_id)} has been recorded",
        "UNKNOWN_ORIGINAL",
    )


def _other_member(t: Transaction) -> InvalidArgument:
    return invalid(
        "original_transaction_id",
        f"sale {quoted(t.original_id)} belongs to another member",
        "OTHER_MEMBER",
    )
