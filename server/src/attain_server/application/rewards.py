"""Reward use cases: reading awards and balances, adjustments, vouchers, the award stream, and
closing a cycle (cycle-close points and reversals), each exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import bindparam, case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.application.retry import retry_on_conflict
from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Violations,
    quoted,
)
from attain_server.domain.model import ReversalPolicy, TargetDefinition
from attain_server.domain.periods import CycleNameError, CycleState
from attain_server.domain.rewards import (
    MAX_POINTS,
    AwardTooLarge,
    check_adjusted_balance,
    close_due,
    is_immediate,
    reached,
    reportable_balance,
)
from attain_server.domain.validation import (
    MAX_VOUCHER_CODE,
    MAX_VOUCHERS_PER_CALL,
    check_code,
    check_label,
    check_text,
    target_calendar,
)
from attain_server.store import bulk, ledger, pages
from attain_server.store.codec import from_document
from attain_server.store.engine import Database
from attain_server.store.errors import Conflict
from attain_server.store.progress import PROGRESS_TABLE, STATE_COLUMNS, state_from_row
from attain_server.store.tables import (
    AwardEventRow,
    AwardRow,
    BrandRow,
    CycleCloseRow,
    LedgerEntryRow,
    MemberRow,
    ProgramRow,
    TargetRow,
    VoucherRow,
)
from attain_server.store.upsert import insert as dialect_insert

from .awards import (
    AwardBook,
    append_events,
    assign_codes,
    default_program,
    load_existing_range,
    new_id,
)
from .live import AWARDS_CHANNEL, notify
from .paging import Page, next_token, time_then_id_after, time_then_id_token

log = structlog.get_logger("attain.rewards")

CLOSE_CHUNK = 5000
# Award stream events read per query; a full page means more are waiting.
AWARD_EVENTS_PAGE = 500


# ---------------------------------------------------------------- reading


async def list_awards(
    *,
    db: Database,
    brand: str,
    page: Page,
    member_id: str = "",
    target_code: str = "",
    cycle: str = "",
    kind: str = "",
) -> tuple[list[AwardRow], str]:
    async with db.read() as s:
        q = select(AwardRow).where(AwardRow.brand_code == brand)
        for column, value in (
            (AwardRow.member_id, member_id),
            (AwardRow.target_code, target_code),
            (AwardRow.cycle, cycle),
            (AwardRow.kind, kind),
        ):
            if value:
                q = q.where(column == value)
        items, resume = await pages.by_time_then_id(
            s,
            q,
            size=page.size,
            after=time_then_id_after(page),
            time_column=col(AwardRow.create_time),
            id_column=col(AwardRow.id),
        )
        return items, time_then_id_token(page, resume)


async def _require_member(s: AsyncSession, brand: str, member_id: str) -> None:
    if await s.get(MemberRow, (brand, member_id)) is None:
        raise NotFound("member", member_id)


async def balances(
    *, db: Database, brand: str, member_id: str, program: str = ""
) -> list[tuple[str, int]]:
    """(program, points) for every program of the brand (or the one named)."""
    async with db.read() as s:
        await _require_member(s, brand, member_id)
        programs = (
            await s.exec(
                select(ProgramRow.code)
                .where(ProgramRow.brand_code == brand)
                .order_by(col(ProgramRow.code))
            )
        ).all()
        if program and program not in programs:
            raise NotFound("program", program)
        sums = await ledger.balances(s, brand, member_id)
    wanted = [program] if program else list(programs)
    return [(code, reportable_balance(sums.get(code, 0))) for code in wanted]


async def list_ledger(
    *, db: Database, brand: str, member_id: str, program: str, page: Page
) -> tuple[list[LedgerEntryRow], str]:
    async with db.read() as s:
        await _require_member(s, brand, member_id)
        q = select(LedgerEntryRow).where(
            LedgerEntryRow.brand_code == brand, LedgerEntryRow.member_id == member_id
        )
        if program:
            q = q.where(LedgerEntryRow.program == program)
        items, resume = await pages.by_time_then_id(
            s,
            q,
            size=page.size,
            after=time_then_id_after(page),
            time_column=col(LedgerEntryRow.create_time),
            id_column=col(LedgerEntryRow.id),
            newest_first=True,
        )
        return items, time_then_id_token(page, resume)


# ---------------------------------------------------------------- adjustments


async def adjust_points(
    *,
    db: Database,
    brand: str,
    request_id: str,
    member_id: str,
    program: str,
    points: int,
    reason: str,
    now: datetime,
) -> tuple[LedgerEntryRow, int]:
    """A correcting ledger entry; a repeat of the same request returns the first entry."""
    v = Violations()
    check_label(v, "request_id", request_id, required=True)
    check_label(v, "member_id", member_id, required=True)
    if program:
        check_code(v, "program", program)
    if points == 0:
        v.add("points", "must not be 0")
    elif not -MAX_POINTS <= points <= MAX_POINTS:
        v.add("points", f"must be between -{MAX_POINTS:,} and {MAX_POINTS:,}")
    if not reason.strip():
        v.add("reason", "is required: say why the points change")
    check_text(v, "reason", reason)
    v.raise_if_any()

    async def adjust() -> tuple[LedgerEntryRow, int]:
        async with db.write() as s:
            first = (
                await s.exec(
                    select(LedgerEntryRow).where(
                        LedgerEntryRow.brand_code == brand,
                        LedgerEntryRow.request_id == request_id,
                    )
                )
            ).first()
            if first is not None:
                same = (first.member_id, first.points, first.reason) == (
                    member_id,
                    points,
                    reason,
                ) and (not program or program == first.program)
                if not same:
                    raise AlreadyExists(
                        f"request {quoted(request_id)} was already used for another adjustment",
                        reason="REQUEST_ID_REUSED",
                    )
                sums = await ledger.balances(s, brand, member_id, first.program)
                return first, reportable_balance(sums.get(first.program, 0))
            entry = await _adjustment(s, brand, request_id, member_id, program, points, reason, now)
            # Checked inside the unit of work: a refusal rolls the entry back.
            total = (await ledger.balances(s, brand, member_id, entry.program))[entry.program]
            check_adjusted_balance(member_id, entry.program, total - points, total)
            return entry, reportable_balance(total)

    # The same request id may race in on another replica: the retry finds its entry.
    return await retry_on_conflict(
        adjust,
        what="adjust points",
        give_up=lambda: Aborted("could not record the adjustment: retry"),
    )


async def _adjustment(
    s: AsyncSession,
    brand: str,
    request_id: str,
    member_id: str,
    program: str,
    points: int,
    reason: str,
    now: datetime,
) -> LedgerEntryRow:
    """Adds the adjustment's ledger entry to the unit of work."""
    await _require_member(s, brand, member_id)
    code = program or await default_program(s, brand)
    if await s.get(ProgramRow, (brand, code)) is None:
        raise InvalidArgument.one("program", f"unknown program {quoted(code)}")
    entry = LedgerEntryRow(
        brand_code=brand,
        id=new_id(),
        member_id=member_id,
        program=code,
        points=points,
        kind="ADJUSTMENT",
        request_id=request_id,
        reason=reason,
        create_time=now,
    )
    s.add(entry)
    await s.flush()
    return entry


# ---------------------------------------------------------------- vouchers


@dataclass(frozen=True, slots=True)
class VoucherLoad:
    loaded: int
    duplicates: int
    available: int
    fulfilled: list[AwardRow]


async def load_vouchers(
    *, db: Database, brand: str, pool: str, codes: Sequence[str], now: datetime
) -> VoucherLoad:
    """Adds codes to a pool, then gives them to awards that were waiting, oldest first."""
    v = Violations()
    check_code(v, "pool", pool)
    if not codes:
        v.add("codes", "give at least one code")
    if len(codes) > MAX_VOUCHERS_PER_CALL:
        v.add("codes", f"at most {MAX_VOUCHERS_PER_CALL:,} codes per call (has {len(codes):,})")
        codes = ()  # the list is refused as a whole: its codes are not read
    for i, code in enumerate(codes):
        check_label(v, f"codes[{i}]", code, required=True, limit=MAX_VOUCHER_CODE)
        if len(v.items) > 20:
            break
    v.raise_if_any()
    unique = list(dict.fromkeys(codes))
    async with db.write() as s:
        table = VoucherRow.__table__  # type: ignore[attr-defined]
        before = await _count(s, brand, pool, free_only=True)
        total_before = await _count(s, brand, pool)
        for i in range(0, len(unique), 1000):
            await s.exec(
                dialect_insert(s, table).on_conflict_do_nothing(
                    index_elements=["brand_code", "pool", "code"]
                ),
                params=[
                    {
                        "brand_code": brand,
                        "pool": pool,
                        "code": c,
                        "award_id": "",
                        "load_time": now,
                        "assign_time": None,
                    }
                    for c in unique[i : i + 1000]
                ],
            )
        total_after = await _count(s, brand, pool)
        loaded = total_after - total_before
        pending = list(
            (
                await s.exec(
                    select(AwardRow)
                    .where(
                        AwardRow.brand_code == brand,
                        AwardRow.voucher_pool == pool,
                        AwardRow.state == "PENDING",
                    )
                    .order_by(col(AwardRow.create_time), col(AwardRow.id))
                    .limit(before + loaded)
                )
            ).all()
        )
        fulfilled: list[AwardRow] = []
        if pending:
            given = await assign_codes(s, brand, pool, pending, now)
            fulfilled = pending[:given]
            for award in fulfilled:
                award.update_time = now
                s.add(award)
            await s.flush()
            await append_events(s, brand, fulfilled, now)
            if db.dialect == "postgresql":
                await notify(s, AWARDS_CHANNEL, brand, {a.member_id for a in fulfilled})
        available = await _count(s, brand, pool, free_only=True)
    return VoucherLoad(loaded, len(codes) - loaded, available, fulfilled)


async def _count(s: AsyncSession, brand: str, pool: str, *, free_only: bool = False) -> int:
    """Codes in the pool, or only those no award holds yet."""
    q = (
        select(func.count())
        .select_from(VoucherRow)
        .where(VoucherRow.brand_code == brand, VoucherRow.pool == pool)
    )
    if free_only:
        q = q.where(VoucherRow.award_id == "")
    return int((await s.exec(q)).one())


async def voucher_pools(
    *, db: Database, brand: str, page: Page
) -> tuple[list[tuple[str, int, int]], str]:
    async with db.read() as s:
        q = (
            select(
                VoucherRow.pool,
                func.count(),
                func.sum(case((col(VoucherRow.award_id) == "", 1), else_=0)),
            )
            .where(VoucherRow.brand_code == brand)
            .group_by(col(VoucherRow.pool))
            .order_by(col(VoucherRow.pool))
        )
        if page.after:
            q = q.where(col(VoucherRow.pool) > page.key(str)[0])
        rows = list((await s.exec(q.limit(page.size + 1))).all())
    items = [(str(p), int(t), int(a or 0)) for p, t, a in rows[: page.size]]
    return items, next_token(page, rows, [items[-1][0]] if items else [])


# ---------------------------------------------------------------- the award stream


async def award_events(
    *, db: Database, brand: str, after: int, member_id: str = "", limit: int = AWARD_EVENTS_PAGE
) -> list[tuple[int, AwardRow]]:
    """Stream events after ``after`` in sequence order, each with its award as it is now."""
    async with db.read() as s:
        q = (
            select(AwardEventRow.seq, AwardRow)
            .join(
                AwardRow,
                (col(AwardRow.brand_code) == col(AwardEventRow.brand_code))
                & (col(AwardRow.id) == col(AwardEventRow.award_id)),
            )
            .where(AwardEventRow.brand_code == brand, col(AwardEventRow.seq) > after)
        )
        if member_id:
            q = q.where(AwardEventRow.member_id == member_id)
        rows = (await s.exec(q.order_by(col(AwardEventRow.seq)).limit(limit))).all()
    return [(int(seq), award) for seq, award in rows]


# ---------------------------------------------------------------- closing a cycle


@dataclass(frozen=True, slots=True)
class CloseResult:
    already_closed: bool
    awards: int
    reversals: int


async def close_cycle(
    *, db: Database, brand: str, target_code: str, cycle: str, now: datetime
) -> CloseResult:
    """Issues the cycle's close-time awards and reversals once; safe to run twice or at once.

    Work goes in chunks of progress rows, each its own unit of work; every award is keyed
    naturally, so a chunk that runs twice (a crash, a second worker) adds nothing the second
    time. The close row is written last: its presence means everything before it is done.
    """
    async with db.read() as s:
        if await s.get(CycleCloseRow, (brand, target_code, cycle)) is not None:
            return CloseResult(True, 0, 0)
        brand_row = await s.get(BrandRow, brand)
        trow = await s.get(TargetRow, (brand, target_code))
        if brand_row is None or trow is None:
            raise NotFound("target", target_code)
        target = from_document(trow.definition)
        program = await default_program(s, brand)  # read once for every chunk
    calendar = target_calendar(target, ZoneInfo(brand_row.time_zone))
    try:
        window = calendar.cycle_named(cycle)
    except CycleNameError as exc:
        raise InvalidArgument.one("cycle", str(exc)) from exc
    if window.state_at(now) is not CycleState.CLOSED:
        raise FailedPrecondition(
            f"cycle {cycle} of {target_code} is still {window.state_at(now).value.lower()}",
            reason="CYCLE_NOT_OVER",
        )
    awards = reversals = 0
    after = ""
    while True:

        async def chunk(after: str = after) -> tuple[bool, str, int, int]:
            async with db.unit() as unit:
                return await _close_chunk(unit, brand, target, cycle, after, now, program)

        done, last, given, taken = await retry_on_conflict(
            chunk,
            what="close a cycle's chunk",
            give_up=lambda: Aborted("too much contention closing the cycle: retry"),
        )
        awards, reversals, after = awards + given, reversals + taken, last
        if done:
            break
    try:
        async with db.write() as s:
            s.add(
                CycleCloseRow(
                    brand_code=brand,
                    target_code=target_code,
                    cycle=cycle,
                    close_time=now,
                    awards=awards,
                    reversals=reversals,
                )
            )
    except Conflict:  # another closer finished first; our chunks found nothing new
        pass
    log.info("cycle closed", target=target_code, cycle=cycle, awards=awards, reversals=reversals)
    return CloseResult(False, awards, reversals)


async def _close_chunk(
    s: bulk.Unit,
    brand: str,
    target: TargetDefinition,
    cycle: str,
    after: str,
    now: datetime,
    program: str,
) -> tuple[bool, str, int, int]:
    # A close reads every progress row of the cycle once and changes none of them: plain
    # rows through a compiled plan (store.bulk), no ORM entities.
    t = PROGRESS_TABLE
    rows = await bulk.fetch(
        s,
        "close.progress_chunk",
        lambda: (
            select(*(t.c[name] for name in STATE_COLUMNS))
            .where(
                t.c.brand_code == bindparam("brand"),
                t.c.target_code == bindparam("target"),
                t.c.cycle == bindparam("cycle"),
                t.c.member_id > bindparam("after"),
            )
            .order_by(t.c.member_id)
            .limit(CLOSE_CHUNK)
        ),
        {"brand": brand, "target": target.code, "cycle": cycle, "after": after},
    )
    if not rows:
        return True, after, 0, 0
    members = [r.member_id for r in rows]
    book = AwardBook(
        brand,
        now,
        await load_existing_range(s, brand, target.code, cycle, members),
        program,
    )
    reversible = [
        r
        for r in target.rules
        if is_immediate(r) and r.reversal_policy is ReversalPolicy.REVERSE_AT_CLOSE
    ]
    at_close = [r for r in target.rules if not is_immediate(r)]
    for row in rows:
        state = state_from_row(row, target)
        standing = state.evaluate(target)
        key = state.key
        for rule in reversible:
            for (rule_id, milestone), award in book.existing[key].by_key.items():
                taken_back = not reached(standing, Decimal(milestone or "0"))
                if rule_id == rule.id and award.state == "GRANTED" and taken_back:
                    book.reverse(award)
        for rule in at_close:
            try:
                due = close_due(rule, standing, state.level)
            except AwardTooLarge as exc:  # the chunk writes nothing; the clock holds the cycle
                raise AwardTooLarge(f"member {key[2]!r}: {exc.message}") from exc
            if due is not None:
                book.give(key, rule, [due])
    written = await book.write(s)
    if written and s.runner.dialect.name == "postgresql":
        await notify(s, AWARDS_CHANNEL, brand, {a.member_id for a in written})
    return len(rows) < CLOSE_CHUNK, members[-1], len(book.new), len(book.reversed)
