"""Reward use cases: reading awards and balances, adjustments, vouchers, the award stream, and
closing a cycle (cycle-close points and reversals), each exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.application.retry import retry_on_conflict
from attain_server.domain.awards import Award, LedgerEntry
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
    points_within_limit,
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
from attain_server.store import awards as award_store
from attain_server.store import ledger
from attain_server.store.brands import (
    list_program_codes,
    load_default_program_code,
    program_exists,
    read_brand_zone,
)
from attain_server.store.cycles import add_cycle_close, cycle_close_exists
from attain_server.store.engine import Database
from attain_server.store.errors import Conflict
from attain_server.store.members import member_exists
from attain_server.store.notify import AWARDS_CHANNEL, notify
from attain_server.store.progress import StateRow, list_progress_chunk, state_from_row
from attain_server.store.targets import load_target_definition
from attain_server.store.units import Conn, Unit

from .awards import AwardBook, assign_codes, load_existing_range, new_id
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
) -> tuple[list[Award], str]:
    async with db.read() as s:
        found = await award_store.list_award_page(
            s,
            brand=brand,
            size=page.size,
            after=time_then_id_after(page),
            member_id=member_id,
            target_code=target_code,
            cycle=cycle,
            kind=kind,
        )
        return found.awards, time_then_id_token(page, found.resume)


async def _require_member(s: Conn, brand: str, member_id: str) -> None:
    if not await member_exists(s, brand=brand, member_id=member_id):
        raise NotFound("member", member_id)


async def balances(
    *, db: Database, brand: str, member_id: str, program: str = ""
) -> list[tuple[str, int]]:
    """(program, points) for every program of the brand (or the one named)."""
    async with db.read() as s:
        await _require_member(s, brand, member_id)
        programs = await list_program_codes(s, brand=brand)
        if program and program not in programs:
            raise NotFound("program", program)
        sums = await ledger.balances(s, brand, member_id)
    wanted = [program] if program else list(programs)
    return [(code, reportable_balance(sums.get(code, 0))) for code in wanted]


async def list_ledger(
    *, db: Database, brand: str, member_id: str, program: str, page: Page
) -> tuple[list[LedgerEntry], str]:
    async with db.read() as s:
        await _require_member(s, brand, member_id)
        found = await ledger.list_ledger_page(
            s,
            brand=brand,
            member_id=member_id,
            program=program,
            size=page.size,
            after=time_then_id_after(page),
        )
        return found.entries, time_then_id_token(page, found.resume)


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
) -> tuple[LedgerEntry, int]:
    """A correcting ledger entry; a repeat of the same request returns the first entry."""
    v = Violations()
    check_label(v, "request_id", request_id, required=True)
    check_label(v, "member_id", member_id, required=True)
    if program:
        check_code(v, "program", program)
    if points == 0:
        v.add("points", "must not be 0")
    elif not points_within_limit(points, signed=True):
        v.add("points", f"must be between -{MAX_POINTS:,} and {MAX_POINTS:,}")
    if not reason.strip():
        v.add("reason", "is required: say why the points change")
    check_text(v, "reason", reason)
    v.raise_if_any()

    async def adjust() -> tuple[LedgerEntry, int]:
        async with db.write() as s:
            first = await ledger.find_ledger_entry_by_request(s, brand=brand, request_id=request_id)
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
) -> LedgerEntry:
    """Adds the adjustment's ledger entry to the unit of work."""
    await _require_member(s, brand, member_id)
    code = program or await load_default_program_code(s, brand=brand)
    if not await program_exists(s, brand=brand, code=code):
        raise InvalidArgument.one("program", f"unknown program {quoted(code)}")
    entry = LedgerEntry(
        brand_code=brand,
        id=new_id(),
        member_id=member_id,
        program=code,
        points=points,
        kind="ADJUSTMENT",
        award_id="",
        request_id=request_id,
        reason=reason,
        create_time=now,
    )
    await ledger.add_ledger_entry(s, entry)
    return entry


# ---------------------------------------------------------------- vouchers


@dataclass(frozen=True, slots=True)
class VoucherLoad:
    loaded: int
    duplicates: int
    available: int
    fulfilled: list[Award]


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
        before = await award_store.count_voucher_codes(s, brand=brand, pool=pool, free_only=True)
        total_before = await award_store.count_voucher_codes(s, brand=brand, pool=pool)
        await award_store.insert_voucher_codes(s, brand=brand, pool=pool, codes=unique, now=now)
        loaded = await award_store.count_voucher_codes(s, brand=brand, pool=pool) - total_before
        fulfilled = await _fulfil_waiting(s, brand, pool, before + loaded, now)
        available = await award_store.count_voucher_codes(s, brand=brand, pool=pool, free_only=True)
    return VoucherLoad(loaded, len(codes) - loaded, available, fulfilled)


async def _fulfil_waiting(
    s: AsyncSession, brand: str, pool: str, free: int, now: datetime
) -> list[Award]:
    """Gives the pool's free codes to awards waiting for one, oldest first."""
    pending = await award_store.load_pending_voucher_awards(s, brand=brand, pool=pool, limit=free)
    if not pending:
        return []
    given = await assign_codes(s, brand, pool, pending, now)
    fulfilled = pending[:given]
    if not fulfilled:
        return []
    for award in fulfilled:
        award.update_time = now
    await award_store.save_voucher_grants(s, brand=brand, awards=fulfilled)
    await award_store.append_award_events(s, brand=brand, awards=fulfilled, now=now)
    await notify(s, AWARDS_CHANNEL, brand, {a.member_id for a in fulfilled})
    return fulfilled


async def voucher_pools(
    *, db: Database, brand: str, page: Page
) -> tuple[list[tuple[str, int, int]], str]:
    async with db.read() as s:
        after = page.key(str)[0] if page.after else ""
        rows = await award_store.list_voucher_pool_counts(
            s, brand=brand, after=after, limit=page.size + 1
        )
    items = [(r.pool, r.total, r.available) for r in rows[: page.size]]
    return items, next_token(page, rows, [items[-1][0]] if items else [])


# ---------------------------------------------------------------- the award stream


async def award_events(
    *, db: Database, brand: str, after: int, member_id: str = "", limit: int = AWARD_EVENTS_PAGE
) -> list[tuple[int, Award]]:
    """Stream events after ``after`` in sequence order, each with its award as it is now."""
    async with db.read() as s:
        return await award_store.load_award_events(
            s, brand=brand, after=after, member_id=member_id, limit=limit
        )


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
        if await cycle_close_exists(s, brand=brand, target_code=target_code, cycle=cycle):
            return CloseResult(True, 0, 0)
        zone = await read_brand_zone(s, brand)
        found = await load_target_definition(s, brand=brand, code=target_code)
        if zone is None or found is None:
            raise NotFound("target", target_code)
        target = found.definition
        program = await load_default_program_code(s, brand=brand)  # read once for every chunk
    calendar = target_calendar(target, zone)
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
            await add_cycle_close(
                s,
                brand=brand,
                target_code=target_code,
                cycle=cycle,
                close_time=now,
                awards=awards,
                reversals=reversals,
            )
    except Conflict:  # another closer finished first; our chunks found nothing new
        pass
    log.info("cycle closed", target=target_code, cycle=cycle, awards=awards, reversals=reversals)
    return CloseResult(False, awards, reversals)


async def _close_chunk(
    s: Unit,
    brand: str,
    target: TargetDefinition,
    cycle: str,
    after: str,
    now: datetime,
    program: str,
) -> tuple[bool, str, int, int]:
    # A close reads every progress row of the cycle once and changes none of them.
    rows = await list_progress_chunk(
        s, brand=brand, target_code=target.code, cycle=cycle, after=after, limit=CLOSE_CHUNK
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
    _settle_at_close(book, rows, target)
    written = await book.write(s)
    if written:
        await notify(s, AWARDS_CHANNEL, brand, {a.member_id for a in written})
    return len(rows) < CLOSE_CHUNK, members[-1], len(book.new), len(book.reversed)


def _settle_at_close(book: AwardBook, rows: Sequence[StateRow], target: TargetDefinition) -> None:
    """Adds to `book` what the final values of `rows` decide: reversals of immediate awards
    whose threshold is no longer met (REVERSE_AT_CLOSE rules), and cycle-close awards."""
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
