"""Recording transactions: idempotent, exact, and one database transaction per batch.

A batch is processed in memory against rows loaded in bulk, then written with a handful of
executemany statements. Each transaction of a batch is its own unit: it is applied whole or
refused whole, and a refused one changes nothing. Uniqueness of transaction ids and of
progress rows is enforced by the database; when a concurrent replica wins a key, the batch
rolls back and runs again on what is now committed, so nothing is counted twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import bindparam, insert
from sqlalchemy.engine import Engine, Row
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.application.retry import retry_on_conflict
from attain_server.domain import attainment as att
from attain_server.domain.decimals import EXACT, decimal_text
from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    AttainError,
    FailedPrecondition,
    InvalidArgument,
    Violations,
    quoted,
)
from attain_server.domain.kpis import Line, ReturnError, Sale, Tally, contribution, net_lines
from attain_server.domain.model import Member, RewardRule, TargetDefinition, TargetState
from attain_server.domain.periods import Calendar, CycleState, CycleWindow
from attain_server.domain.rewards import Due, could_pay, immediate_due, pays_from
from attain_server.domain.transactions import (
    Transaction,
    TransactionType,
    check_transaction,
)
from attain_server.domain.validation import UnusableTarget, target_calendar
from attain_server.store import bulk
from attain_server.store.codec import from_document
from attain_server.store.engine import Database
from attain_server.store.tables import (
    BrandRow,
    MemberRow,
    ProgressRow,
    TargetRow,
    TargetValueRow,
    TransactionRow,
)

from .awards import AwardBook, AwardLike, default_program, load_existing
from .live import AWARDS_CHANNEL, PROGRESS_CHANNEL, notify

log = structlog.get_logger("attain.ingest")

ProgressKey = tuple[str, str, str]  # (target_code, cycle, member_id)
RANK_SCALE = Decimal(10) ** 6
# rank_key is a BIGINT: attainments from about 9.2 trillion percent up rank together there
# (their stored attainment stays exact). Beyond it, the row could not be written at all.
RANK_MAX = 2**63 - 1
# attainment * 10^6 without rounding: an attainment has 40 significant digits, more than the
# default context's 28.

PROGRESS_TABLE = ProgressRow.__table__  # type: ignore[attr-defined]
TARGET_TABLE = TargetRow.__table__  # type: ignore[attr-defined]
BRAND_TABLE = BrandRow.__table__  # type: ignore[attr-defined]
TARGET_VALUE_TABLE = TargetValueRow.__table__  # type: ignore[attr-defined]
MEMBER_TABLE = MemberRow.__table__  # type: ignore[attr-defined]
TXN_TABLE = TransactionRow.__table__  # type: ignore[attr-defined]


class OutcomeStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"
    REFUSED = "REFUSED"


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A progress row as its batch committed it, with what is needed to show it."""

    state: ProgressState
    target: TargetDefinition
    window: CycleWindow
    zone: ZoneInfo
    awards: tuple[AwardLike, ...]


# ---------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class ActiveTarget:
    definition: TargetDefinition
    state: TargetState
    calendar: Calendar
    # The rules that pay the moment a threshold is crossed, each with the lowest attainment
    # percent at which it pays anything (`pays_from`).
    gates: tuple[tuple[RewardRule, Decimal], ...] = ()

    @property
    def immediate(self) -> bool:
        """Has rules that pay the moment a threshold is crossed."""
        return bool(self.gates)

    @property
    def code(self) -> str:
        return self.definition.code


def _gates(definition: TargetDefinition) -> tuple[tuple[RewardRule, Decimal], ...]:
    """The rules that pay on the spot, with `pays_from` (None for the rest)."""
    found = ((rule, pays_from(rule)) for rule in definition.rules)
    return tuple((rule, percent) for rule, percent in found if percent is not None)


class TargetCatalog:
    """Parsed target definitions by (brand, code, version): parsing happens once per version.

    A target whose cycles or awards cannot be computed (`target_calendar`: a definition
    stored before today's checks) is left out, so it counts nothing, and every other target
    of the brand counts as usual; it is logged once per version."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[int, ActiveTarget | None]] = {}

    def definition(self, brand: str, code: str) -> TargetDefinition:
        """The definition loaded by the latest ``load`` of this brand (a usable target's)."""
        target = self._cache[(brand, code)][1]
        assert target is not None, "unusable targets are never loaded into a batch"
        return target.definition

    async def load(self, s: bulk.Conn, brand: str, zone: ZoneInfo) -> dict[str, ActiveTarget]:
        t = TARGET_TABLE
        versions = await bulk.fetch(
            s,
            "ingest.target_versions",
            lambda: select(t.c.code, t.c.version, t.c.state).where(
                t.c.brand_code == bindparam("brand")
            ),
            {"brand": brand},
        )
        stale = [
            code
            for code, version, _ in versions
            if self._cache.get((brand, code), (None,))[0] != version
        ]
        rows = await bulk.fetch_in(
            s,
            "ingest.target_documents",
            lambda n: select(t.c.code, t.c.version, t.c.state, t.c.definition).where(
                t.c.brand_code == bindparam("brand"), bulk.in_list(t.c.code, n)
            ),
            {"brand": brand},
            stale,
        )
        for row in rows:
            definition = from_document(row.definition)
            target: ActiveTarget | None = None
            try:
                calendar = target_calendar(definition, zone)
            except UnusableTarget as exc:
                log.warning(
                    "target left out of ingest", brand=brand, target=row.code, reason=exc.message
                )
            else:
                target = ActiveTarget(
                    definition, TargetState(row.state), calendar, _gates(definition)
                )
            self._cache[(brand, row.code)] = (row.version, target)
        out: dict[str, ActiveTarget] = {}
        for code, _version, state in versions:
            cached = self._cache[(brand, code)][1]
            if cached is None:
                continue
            if cached.state.value != state:  # archiving bumps the version; be safe anyway
                cached = dataclasses.replace(cached, state=TargetState(state))
            out[code] = cached
        return out


# ---------------------------------------------------------------- progress in memory


@dataclass(slots=True)
class ProgressState:
    key: ProgressKey
    level: str
    target_values: dict[str, Decimal]
    tallies: dict[str, Tally]
    version: int
    is_new: bool
    dirty: bool = False
    attainment: Decimal = Decimal(0)
    complete: bool = False
    # The last standing and the definition it was computed for; `changed()` drops it.
    _standing: tuple[TargetDefinition, att.Standing] | None = None

    def changed(self) -> None:
        """The tallies changed: the row must be written and its standing computed anew."""
        self.dirty = True
        self._standing = None

    def evaluate(self, target: TargetDefinition) -> att.Standing:
        cached = self._standing
        if cached is not None and cached[0] is target:
            return cached[1]
        standing = att.standing(
            [
                (c.id, c.kpi, self.target_values[c.id], self.tallies[c.id].value(c.kpi))
                for c in target.criteria
            ]
        )
        self._standing = (target, standing)
        return standing

    def settle(self, target: TargetDefinition) -> None:
        """Sets what the row stores of its standing (attainment and completeness), from the
        standing already computed for `target` or else from the tallies alone."""
        cached = self._standing
        if cached is not None and cached[0] is target:
            self.attainment = cached[1].attainment_percent
            self.complete = cached[1].complete
            return
        self.attainment, self.complete = att.summary(
            [(self.target_values[c.id], self.tallies[c.id].value(c.kpi)) for c in target.criteria]
        )

    def restate(self, target: TargetDefinition) -> att.Standing:
        standing = self.evaluate(target)
        self.attainment = standing.attainment_percent
        self.complete = standing.complete
        return standing

    @property
    def rank_key(self) -> int:
        """attainment * 10^6 rounded down, exactly, capped at RANK_MAX."""
        scaled = EXACT.scaleb(self.attainment, 6)
        return min(int(scaled.to_integral_value(rounding=ROUND_FLOOR)), RANK_MAX)


def resolve_target_values(
    target: TargetDefinition, level: str, member_values: dict[str, Decimal]
) -> dict[str, Decimal]:
    """Most specific first (SPEC section 5): member + cycle, then level, then default."""
    values = {}
    for c in target.criteria:
        value = member_values.get(c.id)
        if value is None:
            value = c.level_target_values.get(level, c.target_value)
        values[c.id] = value
    return values


def new_state(
    target: TargetDefinition,
    key: ProgressKey,
    level: str,
    values: dict[str, Decimal],
) -> ProgressState:
    """A progress row as it opens: zero tallies, the values in force for the member's level
    and the member's own values for the cycle (SPEC section 5). `progress_params` stamps its
    open time when the row is inserted."""
    return ProgressState(
        key=key,
        level=level,
        target_values=resolve_target_values(target, level, values),
        tallies={c.id: Tally() for c in target.criteria},
        version=0,
        is_new=True,
    )


# A brand's zone never changes once it exists (UpdateBrand changes only its name).
_ZONES: dict[tuple[Engine, str], ZoneInfo] = {}


async def brand_zone(s: bulk.Conn, brand: str) -> ZoneInfo | None:
    """The brand's time zone, read once per database; None when the brand does not exist."""
    key = (bulk.engine_of(s), brand)
    zone = _ZONES.get(key)
    if zone is None:
        zone = await read_zone(s, brand)
        if zone is not None:
            _ZONES[key] = zone
    return zone


async def read_zone(s: bulk.Conn, brand: str) -> ZoneInfo | None:
    """The brand's time zone; None when the brand does not exist."""
    b = BRAND_TABLE
    rows = await bulk.fetch(
        s,
        "brand.zone",
        lambda: select(b.c.time_zone).where(b.c.code == bindparam("brand")),
        {"brand": brand},
    )
    return ZoneInfo(rows[0].time_zone) if rows else None


async def load_members(s: bulk.Conn, brand: str, ids: Iterable[str]) -> dict[str, Member]:
    """The members among `ids` that exist, by id, without their display names (what reads
    them here decides audiences and values, and shows no name)."""
    m = MEMBER_TABLE
    rows = await bulk.fetch_in(
        s,
        "ingest.members",
        lambda n: select(m.c.external_id, m.c.level, m.c.groups).where(
            m.c.brand_code == bindparam("brand"), bulk.in_list(m.c.external_id, n)
        ),
        {"brand": brand},
        sorted(set(ids)),
    )
    # What a batch needs of a member: who it is, its level and groups (audiences and values).
    return {r.external_id: Member(r.external_id, "", r.level, tuple(r.groups)) for r in rows}


async def load_member_values(
    s: bulk.Conn, brand: str, keys: Iterable[ProgressKey]
) -> dict[ProgressKey, dict[str, Decimal]]:
    """Per-member cycle values (from SetTargetValues or target files) for rows to open."""
    out: dict[ProgressKey, dict[str, Decimal]] = {}
    by_cycle: dict[tuple[str, str], list[str]] = {}
    for tc, cy, member in sorted(keys):
        by_cycle.setdefault((tc, cy), []).append(member)
    v = TARGET_VALUE_TABLE

    def build(n: int) -> Any:
        return select(v.c.member_id, v.c.criterion_id, v.c.value).where(
            v.c.brand_code == bindparam("brand"),
            v.c.target_code == bindparam("target"),
            v.c.cycle == bindparam("cycle"),
            bulk.in_list(v.c.member_id, n),
        )

    for (tc, cy), members in by_cycle.items():
        params = {"brand": brand, "target": tc, "cycle": cy}
        for r in await bulk.fetch_in(s, "ingest.member_values", build, params, members):
            out.setdefault((tc, cy, r.member_id), {})[r.criterion_id] = r.value
    return out


# The progress columns state_from_row reads.
STATE_COLUMNS = (
    "target_code",
    "cycle",
    "member_id",
    "level",
    "target_values",
    "tallies",
    "version",
    "attainment",
    "complete",
)


def state_from_row(row: ProgressRow | Row[Any], target: TargetDefinition) -> ProgressState:
    """The in-memory state of a progress row: an ORM row, or a Core row with its columns."""
    state = ProgressState(
        key=(row.target_code, row.cycle, row.member_id),
        level=row.level,
        target_values={k: Decimal(v) for k, v in row.target_values.items()},
        tallies={k: Tally.from_json(v) for k, v in row.tallies.items()},
        version=row.version,
        is_new=False,
    )
    # A criterion added to the target after the row opened starts from zero.
    for c in target.criteria:
        state.tallies.setdefault(c.id, Tally())
        state.target_values.setdefault(c.id, c.target_value)
    state.attainment = row.attainment
    state.complete = row.complete
    return state


# ---------------------------------------------------------------- helpers


def _lines_to_json(lines: Iterable[Line]) -> list[list[str]]:
    return [
        [ln.sku, ln.category, decimal_text(ln.quantity), decimal_text(ln.amount)] for ln in lines
    ]


def _lines_from_json(data: Iterable[list[str]]) -> tuple[Line, ...]:
    return tuple(Line(sku, cat, Decimal(q), Decimal(a)) for sku, cat, q, a in data)


@dataclass(slots=True)
class _Sale:
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


# The transaction columns a batch reads back: duplicates, conflicts and returns' originals.
TXN_COLUMNS = (
    "id",
    "member_id",
    "type",
    "occurred_time",
    "store_id",
    "original_id",
    "lines",
    "net_lines",
    "counted_in",
)


async def _transactions(s: bulk.Conn, brand: str, ids: Sequence[str], *, lock: bool) -> list[Any]:
    """Stored transactions by id (locked FOR UPDATE when `lock`)."""
    if not ids:
        return []
    t = TXN_TABLE

    def build(n: int) -> Any:
        q = select(*(t.c[name] for name in TXN_COLUMNS)).where(
            t.c.brand_code == bindparam("brand"), bulk.in_list(t.c.id, n)
        )
        return q.with_for_update() if lock else q

    return await bulk.fetch_in(
        s, "ingest.txns.locked" if lock else "ingest.txns", build, {"brand": brand}, ids
    )


def _stored_sale(r: Any) -> _Sale:
    return _Sale(
        r.id,
        r.member_id,
        r.occurred_time,
        r.store_id,
        _lines_from_json(r.lines),
        _lines_from_json(r.net_lines or r.lines),
        [(tc, cy) for tc, cy in (r.counted_in or [])],
        is_new=False,
    )


def _same_content(row: Any, t: Transaction) -> bool:
    """Exact comparison of a stored transaction with a delivered one (decimals by value)."""
    return (
        row.member_id == t.member_id
        and row.occurred_time == t.occurred_at
        and row.store_id == t.store_id
        and row.type == t.type.value
        and row.original_id == t.original_id
        and _lines_from_json(row.lines) == t.lines
    )


def _refused(t: Transaction, error: AttainError) -> Outcome:
    return Outcome(t.id, OutcomeStatus.REFUSED, error=error)


# ---------------------------------------------------------------- the use case


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

    async def _zone(self, s: bulk.Conn, brand: str) -> ZoneInfo:
        zone = await brand_zone(s, brand)
        if zone is None:
            raise FailedPrecondition(f"brand {brand!r} does not exist")
        return zone

    async def _record(
        self, s: bulk.Conn, brand: str, txns: Sequence[Transaction], snapshots: bool = True
    ) -> list[Outcome]:
        now = self._clock()
        zone = await self._zone(s, brand)
        # Shape first: a malformed transaction is refused before any statement, so none of
        # its values (a NUL, an overlong id) ever reaches the database to fail the batch.
        shape_errors: dict[int, InvalidArgument] = {}
        for i, t in enumerate(txns):
            v = Violations()
            check_transaction(v, t, now, prefix="transaction.")
            if v:
                shape_errors[i] = InvalidArgument(v.items)
        if not shape_errors:
            return await self._record_checked(s, brand, txns, now, zone, snapshots)
        good = [t for i, t in enumerate(txns) if i not in shape_errors]
        checked = iter(await self._record_checked(s, brand, good, now, zone, snapshots))
        return [
            _refused(t, shape_errors[i]) if i in shape_errors else next(checked)
            for i, t in enumerate(txns)
        ]

    async def _record_checked(
        self,
        s: bulk.Conn,
        brand: str,
        txns: Sequence[Transaction],
        now: datetime,
        zone: ZoneInfo,
        snapshots: bool,
    ) -> list[Outcome]:
        """Records transactions that passed `check_transaction`, in order."""
        if not txns:
            return []
        lock = self._db.dialect == "postgresql"
        stored: dict[str, Any] = {  # transaction rows by id
            r.id: r for r in await _transactions(s, brand, sorted({t.id for t in txns}), lock=False)
        }
        members = await load_members(s, brand, (t.member_id for t in txns))
        targets = await self._catalog.load(s, brand, zone)
        sales = await _load_sales(s, brand, txns, stored, lock)
        placed, keys = _place(txns, members, targets, sales)
        progress = await self._load_progress(s, brand, keys, targets, lock)
        apply = _Apply(
            now=now,
            zone=zone,
            targets=targets,
            progress=progress,
            member_values=await load_member_values(s, brand, keys - set(progress)),
        )
        outcomes, accepted = _judge(txns, stored, members, placed, sales, apply)
        book, awarded = await self._give(s, brand, now, keys, targets, apply.dues, snapshots)
        if awarded:
            outcomes = _with_awards(outcomes, awarded)
        # Rows are built after the loop: a return later in the batch may change a new sale.
        new_rows = [_new_row(brand, t, sales, now) for t in accepted]
        await self._write(s, brand, new_rows, sales, progress, now, snapshots)
        given = await book.write(s)
        if snapshots:
            outcomes = [self._with_snapshots(o, targets, progress, book, zone) for o in outcomes]
        if lock:  # PostgreSQL: wake the live streams of every replica at commit
            await notify(s, PROGRESS_CHANNEL, brand, {k[2] for o in outcomes for k in o.touched})
            if given:
                await notify(s, AWARDS_CHANNEL, brand, {a.member_id for a in given})
        return outcomes

    async def _give(
        self,
        s: bulk.Conn,
        brand: str,
        now: datetime,
        keys: set[ProgressKey],
        targets: dict[str, ActiveTarget],
        dues: list[_Dues],
        snapshots: bool,
    ) -> tuple[AwardBook, dict[str, list[AwardLike]]]:
        """The batch's award book, with what its sales crossed given in the order they
        crossed it, and the awards each sale got. The awards rows already have are read only
        where a sale crossed a threshold, or, for replies that show them, for every row a
        paying target touched."""
        if snapshots:
            wanted = {k for k in keys if k[0] in targets and targets[k[0]].immediate}
        else:
            wanted = {d.key for d in dues}
        book = AwardBook(
            brand,
            now,
            await load_existing(s, brand, wanted) if wanted else {},
            await default_program(s, brand) if dues else "",
        )
        awarded: dict[str, list[AwardLike]] = {}
        for d in dues:
            given = book.give(d.key, d.rule, d.due)
            if given:
                awarded.setdefault(d.transaction_id, []).extend(given)
        return book, awarded

    @staticmethod
    def _with_snapshots(
        outcome: Outcome,
        targets: dict[str, ActiveTarget],
        progress: dict[ProgressKey, ProgressState],
        book: AwardBook,
        zone: ZoneInfo,
    ) -> Outcome:
        if not outcome.touched:
            return outcome
        snapshots = []
        for key in outcome.touched:
            target = targets[key[0]]
            given = book.existing.get(key)
            snapshots.append(
                Snapshot(
                    progress[key],
                    target.definition,
                    target.calendar.cycle_named(key[1]),
                    zone,
                    tuple(given.by_key.values()) if given else (),
                )
            )
        # The constructor, not dataclasses.replace(): that one reads every field by name.
        o = outcome
        return Outcome(
            o.transaction_id, o.status, o.error, o.touched, o.closed, o.awards, tuple(snapshots)
        )

    async def _load_progress(
        self,
        s: bulk.Conn,
        brand: str,
        keys: set[ProgressKey],
        targets: dict[str, ActiveTarget],
        lock: bool,
    ) -> dict[ProgressKey, ProgressState]:
        found: dict[ProgressKey, ProgressState] = {}
        by_cycle: dict[tuple[str, str], list[str]] = {}
        for tc, cy, member in sorted(keys):
            by_cycle.setdefault((tc, cy), []).append(member)
        # Core rows, not ORM entities: the rows are read into ProgressState and written back
        # with executemany, so the session never needs to track them.
        p = PROGRESS_TABLE

        def build(n: int) -> Any:
            q = (
                select(*(p.c[name] for name in STATE_COLUMNS))
                .where(
                    p.c.brand_code == bindparam("brand"),
                    p.c.target_code == bindparam("target"),
                    p.c.cycle == bindparam("cycle"),
                    bulk.in_list(p.c.member_id, n),
                )
                .order_by(p.c.member_id)
            )
            return q.with_for_update() if lock else q

        key = "ingest.progress.locked" if lock else "ingest.progress"
        for (tc, cy), members in sorted(by_cycle.items()):
            params = {"brand": brand, "target": tc, "cycle": cy}
            for row in await bulk.fetch_in(s, key, build, params, members):
                found[(tc, cy, row.member_id)] = state_from_row(row, targets[tc].definition)
        return found

    async def _write(
        self,
        s: bulk.Conn,
        brand: str,
        new_rows: list[dict[str, Any]],
        sales: dict[str, _Sale],
        progress: dict[ProgressKey, ProgressState],
        now: datetime,
        snapshots: bool,
    ) -> None:
        """Writes the batch. With `snapshots` the touched rows get their whole standing,
        which the reply shows; without, only what the row stores of it."""
        await bulk.executemany(s, "txn.insert", lambda: insert(TXN_TABLE), new_rows)
        await bulk.update_rows(
            s,
            "txn.net_lines",
            TXN_TABLE,
            (("brand_code", "b_brand"), ("id", "b_id")),
            ("net_lines",),
            [
                {"b_brand": brand, "b_id": x.id, "net_lines": _lines_to_json(x.net)}
                for x in sales.values()
                if x.net_changed and not x.is_new
            ],
        )
        fresh: list[ProgressState] = []  # rows this batch opens
        updated: list[ProgressState] = []
        for p in progress.values():
            if not p.dirty:
                continue
            target = self._catalog.definition(brand, p.key[0])
            if snapshots:
                p.restate(target)
            else:
                p.settle(target)
            p.version += 1
            (fresh if p.is_new else updated).append(p)
        await bulk.executemany(
            s,
            "progress.insert",
            lambda: insert(PROGRESS_TABLE),
            [progress_params(brand, p, now) for p in fresh],
        )
        # Only what an update changes (the level and target values stay as opened), and only
        # where the row is still the version this batch read.
        params = [
            {
                "b_brand": brand,
                "b_target": p.key[0],
                "b_cycle": p.key[1],
                "b_member": p.key[2],
                "b_version": p.version - 1,
                "tallies": tallies_json(p),
                "attainment": p.attainment,
                "rank_key": p.rank_key,
                "complete": p.complete,
                "version": p.version,
                "update_time": now,
            }
            for p in updated
        ]
        changed = await bulk.update_rows(
            s, "progress.update", PROGRESS_TABLE, PROGRESS_MATCH, PROGRESS_SET, params
        )
        if changed != len(params):
            # Someone else changed a row we read: the row locks of PostgreSQL and the one
            # writer of SQLite prevent this, so it means a bug or a manual edit. Roll back
            # rather than lose a count.
            raise Aborted("progress changed while recording: retry")


PROGRESS_MATCH = (
    ("brand_code", "b_brand"),
    ("target_code", "b_target"),
    ("cycle", "b_cycle"),
    ("member_id", "b_member"),
    ("version", "b_version"),
)
PROGRESS_SET = ("tallies", "attainment", "rank_key", "complete", "version", "update_time")


def tallies_json(p: ProgressState) -> dict[str, Any]:
    return {k: t.to_json() for k, t in p.tallies.items()}


def progress_params(brand: str, p: ProgressState, now: datetime) -> dict[str, Any]:
    """The insert of a row opening now."""
    return {
        "brand_code": brand,
        "target_code": p.key[0],
        "cycle": p.key[1],
        "member_id": p.key[2],
        "level": p.level,
        "target_values": {k: decimal_text(v) for k, v in p.target_values.items()},
        "tallies": tallies_json(p),
        "attainment": p.attainment,
        "rank_key": p.rank_key,
        "complete": p.complete,
        "version": p.version,
        "open_time": now,  # a row is inserted in the batch that opens it
        "update_time": now,
    }


def _invalid(field: str, reason: str, code: str) -> InvalidArgument:
    error = InvalidArgument.one(field, reason)
    error.reason = code
    return error


@dataclass(slots=True)
class _Dues:
    """The thresholds one sale reached on one row for one rule."""

    transaction_id: str
    key: ProgressKey
    rule: RewardRule
    due: list[Due]


def _with_awards(outcomes: list[Outcome], awarded: dict[str, list[AwardLike]]) -> list[Outcome]:
    """The accepted sales' outcomes with the awards their crossings got."""
    return [
        Outcome(o.transaction_id, o.status, o.error, o.touched, o.closed, tuple(awards))
        if o.status is OutcomeStatus.ACCEPTED and (awards := awarded.get(o.transaction_id))
        else o
        for o in outcomes
    ]


@dataclass(slots=True)
class _Apply:
    """Applies one transaction to the batch's in-memory state, or refuses it untouched."""

    now: datetime
    zone: ZoneInfo
    targets: dict[str, ActiveTarget]
    progress: dict[ProgressKey, ProgressState]
    member_values: dict[ProgressKey, dict[str, Decimal]]
    states: dict[tuple[str, str], CycleState] = dataclasses.field(default_factory=dict)
    # What the sales crossed, in order; given once the loop is done (`Recorder._give`).
    dues: list[_Dues] = dataclasses.field(default_factory=list)

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
                self.dues.append(_Dues(t.id, state.key, rule, due))

    def _state(self, key: ProgressKey, member: Member | None, level: str) -> ProgressState:
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

    def sale(
        self,
        t: Transaction,
        member: Member,
        placed: list[tuple[ActiveTarget, CycleWindow]],
        sales: dict[str, _Sale],
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
            return _refused(t, _closed_error(closed))
        # The transaction is the sale: its lines are its net lines, and placing it in its
        # cycles checked that its instant is aware.
        touched = []
        for target, window in counted:
            key = (target.code, window.name, t.member_id)
            state = self._state(key, member, member.level)
            tallies = state.tallies
            for c in target.definition.criteria:
                tallies[c.id].add(contribution(c, t, self.zone))
            state.changed()
            if target.immediate:
                self._reward(t, target, state)
            touched.append(key)
        sales[t.id] = _Sale(
            t.id,
            t.member_id,
            t.occurred_at,
            t.store_id,
            t.lines,
            t.lines,
            [(target.code, w.name) for target, w in counted],
            is_new=True,
        )
        return Outcome(
            t.id,
            OutcomeStatus.ACCEPTED,
            touched=tuple(touched),
            closed=tuple(closed),
        )

    def return_(self, t: Transaction, sales: dict[str, _Sale]) -> Outcome:
        original = sales.get(t.original_id)
        if original is None:
            return _refused(
                t,
                _invalid(
                    "transaction.original_transaction_id",
                    f"no sale {quoted(t.original_id)} has been recorded",
                    "UNKNOWN_ORIGINAL",
                ),
            )
        if original.member_id != t.member_id:
            return _refused(
                t,
                _invalid(
                    "transaction.original_transaction_id",
                    f"sale {quoted(t.original_id)} belongs to another member",
                    "OTHER_MEMBER",
                ),
            )
        try:
            new_net = net_lines(original.net, t.lines)
        except ReturnError as exc:
            return _refused(
                t, _invalid(f"transaction.{exc.field}", str(exc), "RETURN_EXCEEDS_SALE")
            )
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
            return _refused(t, _closed_error(closed))
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
        original.net = new_net
        original.net_changed = True
        return Outcome(t.id, OutcomeStatus.ACCEPTED, touched=tuple(touched), closed=tuple(closed))


def _closed_error(closed: list[tuple[str, str]]) -> FailedPrecondition:
    names = ", ".join(f"{target} {cycle}" for target, cycle in closed)
    return FailedPrecondition(
        f"the cycle is closed for {names}: its progress is final", reason="CYCLE_CLOSED"
    )


# ---------------------------------------------------------------- the steps of a batch


async def _load_sales(
    s: bulk.Conn, brand: str, txns: Sequence[Transaction], stored: dict[str, Any], lock: bool
) -> dict[str, _Sale]:
    """The stored sales the batch's returns refer to (loaded and, on PostgreSQL, locked when
    not in the batch), and those among the batch's own ids. Other rows found join `stored`."""
    sales: dict[str, _Sale] = {}
    batch_ids = {t.id for t in txns}
    wanted = sorted(
        {
            t.original_id
            for t in txns
            if t.type is TransactionType.RETURN and t.original_id and t.original_id not in batch_ids
        }
    )
    for r in await _transactions(s, brand, wanted, lock=lock):
        if r.type == TransactionType.SALE.value:
            sales[r.id] = _stored_sale(r)
        else:
            stored.setdefault(r.id, r)
    # Originals stored as SALE rows that are in the batch ids were loaded into `stored`.
    for r in stored.values():
        if r.type == TransactionType.SALE.value and r.id not in sales:
            sales[r.id] = _stored_sale(r)
    return sales


def _place(
    txns: Sequence[Transaction],
    members: dict[str, Member],
    targets: dict[str, ActiveTarget],
    sales: dict[str, _Sale],
) -> tuple[dict[int, list[tuple[ActiveTarget, CycleWindow]]], set[ProgressKey]]:
    """Per sale (by position), the targets whose audience has its member, each with the cycle
    the sale falls in; and every progress row the batch could touch."""
    active = [t for t in targets.values() if t.state is TargetState.ACTIVE]
    keys: set[ProgressKey] = set()
    placed: dict[int, list[tuple[ActiveTarget, CycleWindow]]] = {}
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


def _judge(
    txns: Sequence[Transaction],
    stored: dict[str, Any],
    members: dict[str, Member],
    placed: dict[int, list[tuple[ActiveTarget, CycleWindow]]],
    sales: dict[str, _Sale],
    apply: _Apply,
) -> tuple[list[Outcome], list[Transaction]]:
    """Each transaction's outcome, in order, with its sale or return applied when it is new;
    and the transactions accepted."""
    outcomes: list[Outcome] = []
    seen: dict[str, Transaction] = {}  # accepted earlier in this batch, by id
    accepted: list[Transaction] = []
    for i, t in enumerate(txns):
        previous = seen.get(t.id)
        if previous is not None or t.id in stored:
            # The content decides, exactly: decimals by value and instants by instant, so
            # "10.0" at +07:00 is the same delivery as "10.00" at the same UTC instant.
            same = previous == t if previous is not None else _same_content(stored[t.id], t)
            outcomes.append(Outcome(t.id, OutcomeStatus.DUPLICATE) if same else _conflict(t))
            continue
        who = members.get(t.member_id)
        if who is None:
            outcomes.append(_unknown_member(t))
            continue
        if t.type is TransactionType.SALE:
            outcome = apply.sale(t, who, placed[i], sales)
        else:
            outcome = apply.return_(t, sales)
        outcomes.append(outcome)
        if outcome.status is OutcomeStatus.ACCEPTED:
            seen[t.id] = t
            accepted.append(t)
    return outcomes, accepted


def _conflict(t: Transaction) -> Outcome:
    error = AlreadyExists(
        f"transaction {quoted(t.id)} was already recorded with other content",
        reason="TRANSACTION_CONFLICT",
    )
    return _refused(t, error)


def _unknown_member(t: Transaction) -> Outcome:
    error = _invalid(
        "transaction.member_id", f"unknown member {quoted(t.member_id)}", "UNKNOWN_MEMBER"
    )
    return _refused(t, error)


def _new_row(brand: str, t: Transaction, sales: dict[str, _Sale], now: datetime) -> dict[str, Any]:
    """The transaction row of an accepted transaction."""
    sale = sales.get(t.id) if t.type is TransactionType.SALE else None
    return {
        "brand_code": brand,
        "id": t.id,
        "member_id": t.member_id,
        "type": t.type.value,
        "occurred_time": t.occurred_at,
        "store_id": t.store_id,
        "original_id": t.original_id,
        "lines": _lines_to_json(t.lines),
        # A sale nothing has returned from yet keeps none: its net lines are its lines
        # (`_stored_sale` reads them so), and the row is that much smaller.
        "net_lines": None if sale is None or sale.net is t.lines else _lines_to_json(sale.net),
        # (target, cycle) pairs: JSON writes each tuple as a two-item array.
        "counted_in": sale.counted_in if sale else None,
        "record_time": now,
    }
