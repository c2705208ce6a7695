"""Recording transactions: idempotent, exact, and one database transaction per batch.

A batch is processed in memory against rows loaded in bulk, then written with a handful of
executemany statements. Each transaction of a batch is its own unit: it is applied whole or
refused whole, and a refused one changes nothing. Uniqueness of transaction ids and of
progress rows is enforced by the database; when a concurrent replica wins a key, the batch
rolls back and runs again on what is now committed, so nothing is counted twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.application.retry import retry_on_conflict
from attain_server.domain.awards import Award as AwardLike
from attain_server.domain.errors import Aborted, FailedPrecondition, InvalidArgument, Violations
from attain_server.domain.model import Member
from attain_server.domain.progress import ProgressKey, ProgressState
from attain_server.domain.transactions import Transaction, TransactionType, check_transaction
from attain_server.store.brands import brand_zone, load_default_program_code
from attain_server.store.engine import Database
from attain_server.store.members import load_members_by_id
from attain_server.store.notify import AWARDS_CHANNEL, PROGRESS_CHANNEL, notify
from attain_server.store.progress import (
    insert_progress_states,
    load_progress_states,
    update_progress_states,
)
from attain_server.store.targets import load_member_target_values
from attain_server.store.transactions import (
    NewTransaction,
    StoredTransaction,
    insert_transactions,
    load_transactions_by_id,
    update_net_lines,
)
from attain_server.store.units import Conn

from .awards import AwardBook, load_existing
from .catalog import ActiveTarget, TargetCatalog
from .outcomes import Outcome, OutcomeStatus, Snapshot, refused
from .recording import Applier, BatchSale, Dues, Placement, place, stored_sale

__all__ = ["Outcome", "OutcomeStatus", "Recorder", "Snapshot"]

log = structlog.get_logger("attain.ingest")


@dataclass(slots=True)
class _Batch:
    """What a batch read before applying anything, by key."""

    stored: dict[str, StoredTransaction]  # recorded transactions among the batch's ids
    members: dict[str, Member]
    targets: dict[str, ActiveTarget]
    sales: dict[str, BatchSale]  # the sales the batch's returns refer to, and its own
    placed: Placement
    progress: dict[ProgressKey, ProgressState]
    member_values: dict[ProgressKey, dict[str, Decimal]]  # of the rows it may open
    keys: set[ProgressKey]  # every progress row it could touch


class Recorder:
    """Records transactions in batches; ``record`` is the only entry point."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock
        self._catalog = TargetCatalog()
        # Called after each commit with the brand and the outcomes (live streams listen here).
        self.listeners: list[Callable[[str, list[Outcome]], None]] = []

    async def record(
        self,
        brand: str,
        txns: Sequence[Transaction],
        also: Callable[[AsyncSession, list[Outcome]], Awaitable[None]] | None = None,
        *,
        snapshots: bool = True,
    ) -> list[Outcome]:
        """Records ``txns`` in order; returns one outcome each, in the same order.

        ``snapshots=False`` leaves out the progress each transaction changed (the unary
        reply shows it; a stream's summary and a file import never do).

        ``also`` runs inside the same unit of work once the outcomes are known (a file
        import advances its checkpoint there, so rows and checkpoint commit together).
        """
        if not txns and also is None:
            return []

        async def attempt() -> list[Outcome]:
            async with self._db.unit() as unit:
                outcomes = await self._record(unit, brand, txns, snapshots) if txns else []
                if also is not None:
                    await also(await unit.session(), outcomes)
            return outcomes

        # Another replica may commit one of our keys between our read and our write.
        outcomes = await retry_on_conflict(
            attempt,
            what="record transactions",
            give_up=lambda: Aborted("too much contention recording this batch: retry"),
        )
        for listener in self.listeners:
            try:
                listener(brand, outcomes)
            except Exception:  # committed: a wake-up that failed must not report it failed
                log.exception("ingest listener failed after a commit")
        return outcomes

    async def _record(
        self, s: Conn, brand: str, txns: Sequence[Transaction], snapshots: bool
    ) -> list[Outcome]:
        """Refuses malformed transactions and records the rest, keeping the batch's order."""
        now = self._clock()
        zone = await brand_zone(s, brand)
        if zone is None:
            raise FailedPrecondition(f"brand {brand!r} does not exist")
        # Shape first: a malformed transaction is refused before any statement, so none of
        # its values (a NUL, an overlong id) ever reaches the database to fail the batch.
        malformed = _malformed(txns, now)
        if not malformed:
            return await self._record_checked(s, brand, txns, now, zone, snapshots)
        good = [t for i, t in enumerate(txns) if i not in malformed]
        checked = iter(await self._record_checked(s, brand, good, now, zone, snapshots))
        return [
            refused(t, malformed[i]) if i in malformed else next(checked)
            for i, t in enumerate(txns)
        ]

    async def _record_checked(
        self,
        s: Conn,
        brand: str,
        txns: Sequence[Transaction],
        now: datetime,
        zone: ZoneInfo,
        snapshots: bool,
    ) -> list[Outcome]:
        """Records transactions that passed `check_transaction`, in order: load, apply,
        award, write."""
        if not txns:
            return []
        batch = await self._load(s, brand, txns, zone)
        applier = Applier(
            now, zone, batch.targets, batch.progress, batch.member_values, batch.sales
        )
        outcomes, accepted = applier.apply(txns, batch.stored, batch.members, batch.placed)
        book, outcomes = await _award(s, brand, now, batch, applier.dues, outcomes, snapshots)
        await _write(s, brand, batch, accepted, now, snapshots)
        given = await book.write(s)
        if snapshots:
            outcomes = [_with_snapshots(o, batch, book, zone) for o in outcomes]
        await _wake_streams(s, brand, outcomes, given)
        return outcomes

    async def _load(
        self, s: Conn, brand: str, txns: Sequence[Transaction], zone: ZoneInfo
    ) -> _Batch:
        """Reads what the batch needs, locking the rows it may change (the store takes the
        locks where the database arbitrates writers with them)."""
        ids = sorted({t.id for t in txns})
        stored = {
            r.id: r for r in await load_transactions_by_id(s, brand=brand, ids=ids, lock=False)
        }
        members = await load_members_by_id(s, brand, (t.member_id for t in txns))
        targets = await self._catalog.load(s, brand, zone)
        sales = await _load_sales(s, brand, txns, stored)
        placed, keys = place(txns, members, targets, sales)
        definitions = {code: target.definition for code, target in targets.items()}
        progress = await load_progress_states(
            s, brand=brand, keys=keys, targets=definitions, lock=True
        )
        values = await load_member_target_values(s, brand, keys - set(progress))
        return _Batch(stored, members, targets, sales, placed, progress, values, keys)


def _malformed(txns: Sequence[Transaction], now: datetime) -> dict[int, InvalidArgument]:
    """The shape errors of the batch's transactions, by position."""
    errors: dict[int, InvalidArgument] = {}
    v = Violations()  # a new one only after a transaction filled it: most never do
    for i, t in enumerate(txns):
        check_transaction(v, t, now)
        if v:
            errors[i] = InvalidArgument(v.items)
            v = Violations()
    return errors


async def _load_sales(
    s: Conn,
    brand: str,
    txns: Sequence[Transaction],
    stored: dict[str, StoredTransaction],
) -> dict[str, BatchSale]:
    """The recorded sales the batch's returns refer to (loaded and locked when not in the
    batch), and those among the batch's own ids. Other transactions found join `stored`."""
    sales: dict[str, BatchSale] = {}
    batch_ids = {t.id for t in txns}
    wanted = sorted(
        {
            t.original_id
            for t in txns
            if t.type is TransactionType.RETURN and t.original_id and t.original_id not in batch_ids
        }
    )
    for r in await load_transactions_by_id(s, brand=brand, ids=wanted, lock=True):
        if r.type is TransactionType.SALE:
            sales[r.id] = stored_sale(r)
        else:
            stored.setdefault(r.id, r)
    # Originals recorded as sales whose ids are in the batch were loaded into `stored`.
    for r in stored.values():
        if r.type is TransactionType.SALE and r.id not in sales:
            sales[r.id] = stored_sale(r)
    return sales


async def _award(
    s: Conn,
    brand: str,
    now: datetime,
    batch: _Batch,
    dues: list[Dues],
    outcomes: list[Outcome],
    snapshots: bool,
) -> tuple[AwardBook, list[Outcome]]:
    """The batch's award book, with what its sales crossed given in the order they crossed
    it, and the outcomes with the awards each sale got. The awards rows already have are
    read only where a sale crossed a threshold, or, for replies that show them, for every
    row a paying target touched."""
    targets = batch.targets
    if snapshots:
        wanted = {k for k in batch.keys if k[0] in targets and targets[k[0]].immediate}
    else:
        wanted = {d.key for d in dues}
    book = AwardBook(
        brand,
        now,
        await load_existing(s, brand, wanted) if wanted else {},
        await load_default_program_code(s, brand=brand) if dues else "",
    )
    awarded: dict[str, list[AwardLike]] = {}
    for d in dues:
        given = book.give(d.key, d.rule, d.due)
        if given:
            awarded.setdefault(d.transaction_id, []).extend(given)
    if not awarded:
        return book, outcomes
    return book, [
        dataclasses.replace(o, awards=tuple(awards))
        if o.status is OutcomeStatus.ACCEPTED and (awards := awarded.get(o.transaction_id))
        else o
        for o in outcomes
    ]


async def _write(
    s: Conn,
    brand: str,
    batch: _Batch,
    accepted: list[Transaction],
    now: datetime,
    snapshots: bool,
) -> None:
    """Writes the batch. With `snapshots` the touched rows get their whole standing, which
    the reply shows; without, only what the row stores of it."""
    # Built after the loop: a return later in the batch may change a new sale.
    await insert_transactions(
        s, brand=brand, records=[_new_record(t, batch.sales) for t in accepted], now=now
    )
    nets = [(x.id, x.net) for x in batch.sales.values() if x.net_changed and not x.is_new]
    await update_net_lines(s, brand=brand, nets=nets)
    fresh: list[ProgressState] = []  # rows this batch opens
    updated: list[ProgressState] = []
    for p in batch.progress.values():
        if not p.dirty:
            continue
        target = batch.targets[p.key[0]].definition
        if snapshots:
            p.restate(target)
        else:
            p.settle(target)
        p.version += 1
        (fresh if p.is_new else updated).append(p)
    await insert_progress_states(s, brand=brand, states=fresh, now=now)
    changed = await update_progress_states(s, brand=brand, states=updated, now=now)
    if changed != len(updated):
        # Someone else changed a row we read: the row locks of PostgreSQL and the one writer
        # of SQLite prevent this, so it means a bug or a manual edit. Roll back rather than
        # lose a count.
        raise Aborted("progress changed while recording: retry")


async def _wake_streams(
    s: Conn, brand: str, outcomes: list[Outcome], given: Sequence[AwardLike]
) -> None:
    """Wakes the live streams of every replica at commit (nothing where one process serves
    the database). Generators: the store reads the members only when it sends."""
    await notify(s, PROGRESS_CHANNEL, brand, (k[2] for o in outcomes for k in o.touched))
    if given:
        await notify(s, AWARDS_CHANNEL, brand, (a.member_id for a in given))


def _new_record(t: Transaction, sales: dict[str, BatchSale]) -> NewTransaction:
    """The row of an accepted transaction."""
    sale = sales.get(t.id) if t.type is TransactionType.SALE else None
    if sale is None:
        return NewTransaction(t)
    # A sale nothing has returned from yet keeps no net lines: they are its lines (a stored
    # sale is read back so), and the row is that much smaller.
    return NewTransaction(t, None if sale.net is t.lines else sale.net, sale.counted_in)


def _with_snapshots(outcome: Outcome, batch: _Batch, book: AwardBook, zone: ZoneInfo) -> Outcome:
    if not outcome.touched:
        return outcome
    snapshots = []
    for key in outcome.touched:
        target = batch.targets[key[0]]
        given = book.existing.get(key)
        snapshots.append(
            Snapshot(
                batch.progress[key],
                target.definition,
                target.calendar.cycle_named(key[1]),
                zone,
                tuple(given.by_key.values()) if given else (),
            )
        )
    return dataclasses.replace(outcome, snapshots=tuple(snapshots))
