"""SIGKILL in the middle of an ingest batch: no half award, and a full replay loses nothing.

`attain-server serve` runs as a real process on PostgreSQL and receives every transaction
through RecordTransactions, in messages of a few hundred: each message is one database
transaction that writes transactions, progress, awards, ledger entries, voucher draws and
award stream events. The process is killed with SIGKILL several times:

* "random" rounds kill it at a random moment (20-400 ms) after the round's first new commit;
* the "writing" round polls ``pg_locks`` and kills it about a millisecond after it sees a
  batch holding uncommitted transaction inserts, with no lock to help;
* "pinned" rounds hold an EXCLUSIVE lock on ``ledger_entry`` or ``award_event`` so that the
  first batch that gives an award stops right after inserting its award rows (and, for
  ``award_event``, its ledger entries and counter bump); the test sees in ``pg_locks`` that
  the server's transaction holds its award inserts and waits, and kills it there. No timing
  luck: the kill lands between award and commit every time.

After each kill (once the dead process's database sessions are gone) the committed rows must
be whole: every award has its ledger entry and stream event, stream sequence numbers have no
gap, progress equals the stored transactions, and awards match exactly the milestones stored
progress reaches. Every round resends everything from the start (fixed ids, so stored ones
come back as duplicates); a last run to completion must give the exact expected totals,
each milestone once per member, and the expected balances.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import col, func, select

from attain.v1 import progress_pb2 as ppb
from attain.v1 import progress_pb2_grpc, rewards_pb2_grpc, targets_pb2_grpc
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application.brands import create_brand
from attain_server.store.engine import Database
from attain_server.store.tables import (
    AwardEventRow,
    AwardRow,
    CounterRow,
    LedgerEntryRow,
    ProgressRow,
    TransactionRow,
    VoucherRow,
)
from support import D, auth, line, sale, start_server

TARGET = "CRASH-SALES"
TARGET_VALUE = Decimal("1000")
MILESTONE_RULE = "r1"
VOUCHER_RULE = "r2"
MILESTONES = {Decimal("25"): 5, Decimal("50"): 10, Decimal("100"): 20}
VOUCHER_THRESHOLD = Decimal("100")
POOL = "GIFT"
VOUCHER_CODES = 60  # fewer than the members who reach 100%: some vouchers stay PENDING
MEMBERS = 200
SALES_PER_MEMBER = 15
BATCH = 250  # transactions per RecordTransactions message (one database transaction each)
ROUNDS = ("random", "pinned:ledger_entry", "writing", "pinned:award_event", "random")
WRITE_TABLES = ("txn", "progress", "award", "ledger_entry", "award_event", "counter", "voucher")


# ---------------------------------------------------------------- the workload


@dataclass(frozen=True)
class Sale:
    id: str
    member: str
    when: datetime
    amounts: tuple[Decimal, ...]  # one per line

    @property
    def total(self) -> Decimal:
        return sum(self.amounts, Decimal(0))

    def proto(self) -> ppb.Transaction:
        lines = [line(str(amount), sku=f"SKU-{n}") for n, amount in enumerate(self.amounts)]
        return sale(self.id, str(self.total), self.when, member=self.member, lines=lines)


def _cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def _member_total(rng: random.Random, i: int) -> Decimal:
    """Totals spread over every milestone band, with some exactly on a milestone."""
    band = i % 6
    if band == 0:
        return _cents(rng.randrange(5_000, 24_999))  # below 25%
    if band == 1:
        return Decimal("250.00") if i % 12 == 1 else _cents(rng.randrange(25_000, 49_999))
    if band == 2:
        return Decimal("500.00") if i % 12 == 2 else _cents(rng.randrange(50_000, 99_999))
    if band == 3:
        return Decimal("1000.00")
    return _cents(rng.randrange(100_001, 160_000))


def workload(now: datetime) -> tuple[list[Sale], dict[str, Decimal]]:
    """Fixed transactions (same ids and content every round) and each member's total."""
    rng = random.Random(20_261_101)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elapsed = now - month_start
    sales: list[Sale] = []
    totals: dict[str, Decimal] = {}
    for i in range(MEMBERS):
        member = f"M{i:03d}"
        total = _member_total(rng, i)
        totals[member] = total
        cents = int(total.scaleb(2))
        cuts = sorted(rng.sample(range(1, cents), SALES_PER_MEMBER - 1))
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, cents], strict=True)]
        for k, part in enumerate(parts):
            # Every third sale has two lines: progress must add every line's amount.
            if k % 3 == 0 and part > 1:
                first = rng.randrange(1, part)
                amounts: tuple[Decimal, ...] = (_cents(first), _cents(part - first))
            else:
                amounts = (_cents(part),)
            when = month_start + elapsed * (k + 1) // (SALES_PER_MEMBER + 2)
            sales.append(Sale(f"T-{member}-{k:02d}", member, when, amounts))
        assert sum((s.total for s in sales if s.member == member), Decimal(0)) == total
    rng.shuffle(sales)  # every message touches many members and crosses many milestones
    return sales, totals


def reached(achieved: Decimal, percent: Decimal) -> bool:
    return achieved * 100 >= percent * TARGET_VALUE


def expected_awards(achieved: Decimal) -> set[tuple[str, Decimal]]:
    out = {(MILESTONE_RULE, m) for m in MILESTONES if reached(achieved, m)}
    if reached(achieved, VOUCHER_THRESHOLD):
        out.add((VOUCHER_RULE, VOUCHER_THRESHOLD))
    return out


def expected_points(achieved: Decimal) -> int:
    return sum(points for m, points in MILESTONES.items() if reached(achieved, m))


def target_definition(start: str) -> tpb.Target:
    return tpb.Target(
        code=TARGET,
        criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D("1000"))],
        period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date=start),
        rules=[
            tpb.RewardRule(
                id=MILESTONE_RULE,
                milestones=tpb.MilestonesRule(
                    milestones=[
                        tpb.Milestone(
                            attainment_percent=D(str(m)), incentive=typ.Incentive(points=p)
                        )
                        for m, p in MILESTONES.items()
                    ]
                ),
            ),
            tpb.RewardRule(
                id=VOUCHER_RULE,
                fixed=tpb.FixedRule(
                    threshold_percent=D(str(VOUCHER_THRESHOLD)),
                    incentive=typ.Incentive(voucher_pool=POOL),
                ),
            ),
        ],
    )


# ---------------------------------------------------------------- the server process


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    address: str


@contextlib.asynccontextmanager
async def serve(pg_url: str, log_path: Path) -> AsyncIterator[Server]:
    """`attain-server serve` on 127.0.0.1 and a free port; killed (if alive) on the way out."""
    env = {**os.environ, "ATTAIN_KEY_CACHE_SECONDS": "0"}
    proc, address = await asyncio.to_thread(
        start_server, log_path, "--database-url", pg_url, env=env
    )
    try:
        yield Server(proc, address)
    finally:
        if proc.poll() is None:
            proc.kill()
        await asyncio.to_thread(proc.wait, 30)


async def send_all(
    address: str, md: tuple[tuple[str, str], ...], sales: Sequence[Sale]
) -> ppb.RecordTransactionsResponse:
    """Every sale from the start, in messages of BATCH, on one client stream."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = progress_pb2_grpc.ProgressServiceStub(channel)

        async def messages() -> AsyncIterator[ppb.RecordTransactionsRequest]:
            for i in range(0, len(sales), BATCH):
                yield ppb.RecordTransactionsRequest(
                    transactions=[s.proto() for s in sales[i : i + BATCH]]
                )

        response: ppb.RecordTransactionsResponse = await stub.RecordTransactions(
            messages(), metadata=md, timeout=60
        )
        return response


# ---------------------------------------------------------------- watching PostgreSQL


@dataclass(frozen=True)
class LockView:
    """Relation locks that sessions other than ours hold (or wait for) on Attain's tables."""

    rows: tuple[tuple[int, str, str, bool], ...]  # (pid, table, mode, granted)

    def pids(self) -> set[int]:
        return {pid for pid, _, _, _ in self.rows}

    def holds(self, pid: int, table: str, mode: str = "RowExclusiveLock") -> bool:
        return any(r == (pid, table, mode, True) for r in self.rows)

    def waiting_on(self, table: str) -> set[int]:
        return {pid for pid, t, _, granted in self.rows if t == table and not granted}

    @property
    def in_transaction(self) -> bool:
        return bool(self.rows)

    @property
    def writes_uncommitted(self) -> bool:
        """An ingest batch has inserted transactions and not committed yet."""
        return any(t == "txn" and m == "RowExclusiveLock" and g for _, t, m, g in self.rows)

    @property
    def awards_uncommitted(self) -> bool:
        """A transaction has inserted award rows and not committed yet."""
        return any(t == "award" and m == "RowExclusiveLock" and g for _, t, m, g in self.rows)


async def lock_view(conn: AsyncConnection) -> LockView:
    result = await conn.execute(
        text(
            "SELECT l.pid, c.relname, l.mode, l.granted FROM pg_locks l"
            " JOIN pg_class c ON c.oid = l.relation"
            " WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid()"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND c.relname = ANY(:tables)"
        ),
        {"tables": list(WRITE_TABLES)},
    )
    rows = tuple(sorted((int(p), str(t), str(m), bool(g)) for p, t, m, g in result.all()))
    await conn.commit()  # never keep a snapshot open across polls
    return LockView(rows)


async def settle(conn: AsyncConnection, dead: set[int] | None = None) -> None:
    """Waits until no other session holds locks on Attain's tables (the dead one aborted)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = await lock_view(conn)
        if not view.in_transaction:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"sessions of the killed server still hold locks: {view.rows} ({dead})")


async def stored_count(db: Database, brand: str) -> int:
    async with db.read() as s:
        count = (
            await s.exec(
                select(func.count())
                .select_from(TransactionRow)
                .where(TransactionRow.brand_code == brand)
            )
        ).one()
    return int(count)


# ---------------------------------------------------------------- invariants


@dataclass
class Snapshot:
    transactions: int
    awards: int
    progress: dict[str, Decimal] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    awarded: dict[str, set[tuple[str, Decimal]]] = field(default_factory=dict)
    vouchers: Counter[str] = field(default_factory=Counter)


async def check_invariants(db: Database, brand: str) -> Snapshot:
    """What committed rows must satisfy whenever the process died, whatever the moment."""
    async with db.read() as s:
        txns = list(
            (await s.exec(select(TransactionRow).where(TransactionRow.brand_code == brand))).all()
        )
        progress = list(
            (await s.exec(select(ProgressRow).where(ProgressRow.brand_code == brand))).all()
        )
        awards = list((await s.exec(select(AwardRow).where(AwardRow.brand_code == brand))).all())
        ledger = list(
            (await s.exec(select(LedgerEntryRow).where(LedgerEntryRow.brand_code == brand))).all()
        )
        events = list(
            (
                await s.exec(
                    select(AwardEventRow)
                    .where(AwardEventRow.brand_code == brand)
                    .order_by(col(AwardEventRow.seq))
                )
            ).all()
        )
        counter = (
            await s.exec(
                select(CounterRow.value).where(
                    CounterRow.brand_code == brand, CounterRow.name == "award_event"
                )
            )
        ).first()
        vouchers = list(
            (await s.exec(select(VoucherRow).where(VoucherRow.brand_code == brand))).all()
        )

    # Stored transactions and stored progress agree exactly.
    sums: dict[str, Decimal] = {}
    cycles = {p.cycle for p in progress}
    assert len(cycles) == 1 or not txns, cycles
    for t in txns:
        assert t.type == "SALE", t
        # No returns in this workload: a sale nothing was returned from keeps no net lines.
        assert t.net_lines is None, t
        assert t.counted_in is not None and [tuple(k) for k in t.counted_in] == [
            (TARGET, next(iter(cycles)))
        ], (t.id, t.counted_in, cycles)
        amount = sum((Decimal(amt) for _sku, _cat, _qty, amt in t.lines), Decimal(0))
        sums[t.member_id] = sums.get(t.member_id, Decimal(0)) + amount
    achieved: dict[str, Decimal] = {}
    for p in progress:
        assert p.target_code == TARGET
        assert len(p.tallies) == 1, p.tallies
        (tally,) = p.tallies.values()
        achieved[p.member_id] = Decimal(tally["total"])
        assert p.attainment == achieved[p.member_id] * 100 / TARGET_VALUE, (p.member_id, p)
    # The worker inside `serve` opens every member's row at zero when the cycle opens: a row
    # without stored transactions must be zero, and every member with some must have a row.
    assert set(sums) <= set(achieved), sorted(set(sums) - set(achieved))
    differ = {
        m: (a, sums.get(m, Decimal(0))) for m, a in achieved.items() if a != sums.get(m, Decimal(0))
    }
    assert differ == {}, f"stored progress differs from the stored transactions: {differ}"

    # Awards: one per natural key, exactly the milestones stored progress reaches.
    natural = Counter((a.target_code, a.cycle, a.member_id, a.rule_id, a.milestone) for a in awards)
    assert [k for k, n in natural.items() if n > 1] == []
    awarded: dict[str, set[tuple[str, Decimal]]] = {}
    for a in awards:
        assert a.target_code == TARGET and a.state in ("GRANTED", "PENDING"), a
        awarded.setdefault(a.member_id, set()).add((a.rule_id, Decimal(a.milestone)))
        if a.rule_id == MILESTONE_RULE:
            assert (a.kind, a.points, a.state) == (
                "POINTS",
                MILESTONES[Decimal(a.milestone)],
                "GRANTED",
            )
        else:
            assert (a.rule_id, a.kind, a.points) == (VOUCHER_RULE, "VOUCHER", 0), a
    for member in set(achieved) | set(awarded):
        assert awarded.get(member, set()) == expected_awards(achieved.get(member, Decimal(0))), (
            member,
            achieved.get(member),
            awarded.get(member),
        )

    # Every POINTS award has exactly one AWARD ledger entry of its points, and back.
    by_award = Counter(e.award_id for e in ledger)
    award_by_id = {a.id: a for a in awards}
    assert len(award_by_id) == len(awards)
    for a in awards:
        if a.kind == "POINTS":
            assert by_award[a.id] == 1, a
        else:
            assert by_award[a.id] == 0, a
    points: dict[str, int] = {}
    for entry in ledger:
        assert entry.kind == "AWARD", entry
        paid = award_by_id.get(entry.award_id)
        assert paid is not None, f"ledger entry {entry.id} without its award {entry.award_id}"
        assert (entry.points, entry.member_id, entry.program) == (
            paid.points,
            paid.member_id,
            paid.program,
        ), (entry, paid)
        points[entry.member_id] = points.get(entry.member_id, 0) + entry.points
    for member, got in points.items():
        assert got == expected_points(achieved[member]), (member, got, achieved[member])

    # The award stream: an event per award, sequence 1..N without a gap, counter at N.
    seqs = [event.seq for event in events]
    assert seqs == list(range(1, len(events) + 1)), seqs[:20]
    assert (counter or 0) == len(events)
    events_of = Counter(event.award_id for event in events)
    for a in awards:
        assert events_of[a.id] >= 1, f"award {a.id} has no stream event"
    for event in events:
        told = award_by_id.get(event.award_id)
        assert told is not None, f"event {event.seq} of a missing award {event.award_id}"
        assert event.member_id == told.member_id

    # Vouchers: a drawn code belongs to exactly one stored award, a GRANTED voucher has one.
    drawn = {v.award_id: v for v in vouchers if v.award_id}
    assert len(drawn) == sum(1 for v in vouchers if v.award_id)
    for award_id, v in drawn.items():
        holder = award_by_id.get(award_id)
        assert holder is not None, f"code {v.code} drawn for a missing award {award_id}"
        assert (holder.state, holder.voucher_code, holder.voucher_pool) == (
            "GRANTED",
            v.code,
            POOL,
        ), (holder, v)
    voucher_awards = [a for a in awards if a.kind == "VOUCHER"]
    for a in voucher_awards:
        if a.state == "GRANTED":
            assert a.id in drawn, a
        else:
            assert a.voucher_code == "" and a.id not in drawn, a
    assert len(drawn) == min(len(vouchers), len(voucher_awards))

    return Snapshot(
        transactions=len(txns),
        awards=len(awards),
        progress=achieved,
        points=points,
        awarded=awarded,
        vouchers=Counter(a.state for a in voucher_awards),
    )


# ---------------------------------------------------------------- the test


@dataclass
class Kill:
    round: int
    mode: str
    delay: float
    stored_before: int
    stored_after: int
    in_transaction: bool
    writes_uncommitted: bool
    awards_uncommitted: bool
    stream: str
    awards_after: int
    seconds: float


async def _wait_for_new_commit(
    db: Database, brand: str, before: int, task: asyncio.Task[Any]
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not task.done():
        if await stored_count(db, brand) > before:
            return
        await asyncio.sleep(0.01)


async def _wait_for_writes(conn: AsyncConnection, task: asyncio.Task[Any]) -> LockView:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not task.done():
        view = await lock_view(conn)
        if view.writes_uncommitted:
            return view
    return await lock_view(conn)


async def _wait_for_pin(
    conn: AsyncConnection, table: str, task: asyncio.Task[Any]
) -> tuple[int, LockView]:
    """The server's batch inserted awards and now waits for ``table``: its pid."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = await lock_view(conn)
        for pid in view.waiting_on(table):
            if view.holds(pid, "award") and view.holds(pid, "txn") and view.holds(pid, "progress"):
                waiting = (
                    await conn.execute(
                        text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                    )
                ).scalar_one()
                await conn.commit()
                # Blocked on the statement that comes after the award rows were inserted:
                # an INSERT, or the COPY that several rows are on PostgreSQL.
                assert str(waiting).startswith((f"INSERT INTO {table} ", f'COPY "{table}"')), (
                    waiting
                )
                return pid, view
        if task.done():
            raise AssertionError(f"the stream ended before any batch waited on {table}: {task}")
        await asyncio.sleep(0.005)
    raise AssertionError(f"no batch waited on {table}")


async def _outcome(task: asyncio.Task[ppb.RecordTransactionsResponse]) -> str:
    try:
        response = await asyncio.wait_for(task, 30)
    except grpc.aio.AioRpcError as error:
        return f"failed {error.code().name}"
    return f"completed (accepted {response.accepted}, duplicate {response.duplicate})"


async def test_sigkill_mid_batch_leaves_no_half_award_and_replay_counts_once(
    pg_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    now = datetime.now(UTC)
    if (now + timedelta(minutes=10)).month != now.month:
        pytest.skip("the monthly cycle closes within minutes: run again after midnight UTC")
    sales, totals = workload(now)
    brand = f"K{rng.randrange(10**9)}"
    db = Database(pg_url)
    watcher: AsyncEngine = create_async_engine(pg_url)
    kills: list[Kill] = []
    try:
        await db.migrate()
        _, _, secret = await create_brand(db=db, code=brand, time_zone="UTC", now=now)
        md = auth(secret)
        async with watcher.connect() as conn:
            for number, mode in enumerate(ROUNDS, start=1):
                kill = await _kill_round(
                    number, mode, rng, pg_url, tmp_path, db, conn, brand, md, sales, now
                )
                kills.append(kill)

            # Last: everything once more, to the end.
            before = await stored_count(db, brand)
            async with serve(pg_url, tmp_path / "server-final.log") as server:
                response = await send_all(server.address, md, sales)
                assert (response.accepted, response.duplicate, response.refused) == (
                    len(sales) - before,
                    before,
                    0,
                ), Counter((r.reason, r.message[:120]) for r in response.refusals)
                final = await check_invariants(db, brand)
                await _check_over_grpc(server.address, md, totals)
                server.proc.terminate()
    finally:
        await watcher.dispose()
        await db.dispose()
        _report(seed, kills, started)

    assert final.transactions == len(sales)
    assert final.progress == totals
    assert final.awarded == {m: expected_awards(t) for m, t in totals.items() if expected_awards(t)}
    assert final.points == {m: expected_points(t) for m, t in totals.items() if expected_points(t)}
    reaching = sum(1 for t in totals.values() if reached(t, VOUCHER_THRESHOLD))
    assert final.vouchers == Counter(
        {"GRANTED": VOUCHER_CODES, "PENDING": reaching - VOUCHER_CODES}
    )
    # The crashes really happened inside batches, with award rows written and not committed.
    assert sum(1 for k in kills if k.awards_uncommitted) >= 2


async def _kill_round(
    number: int,
    mode: str,
    rng: random.Random,
    pg_url: str,
    tmp_path: Path,
    db: Database,
    conn: AsyncConnection,
    brand: str,
    md: tuple[tuple[str, str], ...],
    sales: Sequence[Sale],
    now: datetime,
) -> Kill:
    """Starts a server, streams everything from the start, SIGKILLs it, checks the rows."""
    started = time.monotonic()
    before = await stored_count(db, brand)
    pinned = mode.split(":")[1] if mode.startswith("pinned:") else ""
    pin: AsyncConnection | None = None
    at_pin = -1
    if pinned:
        # Held before the server starts: the first batch that gives an award inserts its
        # award rows, then waits for this lock until after the kill.
        pin = await conn.engine.connect()
        await pin.execute(text(f"LOCK TABLE {pinned} IN EXCLUSIVE MODE"))
    task: asyncio.Task[ppb.RecordTransactionsResponse] | None = None
    try:
        async with serve(pg_url, tmp_path / f"server-{number}.log") as server:
            if number == 1:
                await _configure(server.address, md, now)
            task = asyncio.create_task(send_all(server.address, md, sales))
            delay = 0.0
            if pinned:
                _pid, view = await _wait_for_pin(conn, pinned, task)
                at_pin = await stored_count(db, brand)  # the server waits: nothing commits
            elif mode == "writing":
                # No lock: kill as soon as a batch is seen writing (about a millisecond later).
                delay = rng.uniform(0.0, 0.3)
                await asyncio.sleep(delay)
                view = await _wait_for_writes(conn, task)
            else:
                await _wait_for_new_commit(db, brand, before, task)
                delay = rng.uniform(0.02, 0.4)
                await asyncio.sleep(delay)
                view = await lock_view(conn)  # what was open a moment before the kill
            server.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(server.proc.wait, 30)
            assert server.proc.returncode == -signal.SIGKILL
            stream = await _outcome(task)
    finally:
        if task is not None and not task.done():  # only when something above failed
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await task
        if pin is not None:
            await pin.rollback()  # the dead server's session finishes its statement, then aborts
            await pin.close()
    await settle(conn, view.pids())
    snapshot = await check_invariants(db, brand)
    if pinned:
        # The pinned batch had inserted award rows when it died: none of it committed.
        assert view.awards_uncommitted
        assert snapshot.transactions == at_pin
    return Kill(
        number,
        mode,
        delay,
        before,
        snapshot.transactions,
        view.in_transaction,
        view.writes_uncommitted,
        view.awards_uncommitted,
        stream,
        snapshot.awards,
        time.monotonic() - started,
    )


async def _configure(address: str, md: tuple[tuple[str, str], ...], now: datetime) -> None:
    """The target (starting on the first day of this UTC month), members and voucher codes."""
    async with grpc.aio.insecure_channel(address) as channel:
        targets = targets_pb2_grpc.TargetServiceStub(channel)
        start = now.date().replace(day=1).isoformat()
        await targets.CreateTarget(
            tpb.CreateTargetRequest(target=target_definition(start)), metadata=md
        )
        sem = asyncio.Semaphore(16)

        async def upsert(member: str) -> None:
            async with sem:
                await targets.UpsertMember(
                    tpb.UpsertMemberRequest(member=tpb.Member(external_id=member)), metadata=md
                )

        await asyncio.gather(*(upsert(f"M{i:03d}") for i in range(MEMBERS)))
        loaded = await rewards_pb2_grpc.RewardServiceStub(channel).LoadVouchers(
            rpb.LoadVouchersRequest(pool=POOL, codes=[f"G-{i:03d}" for i in range(VOUCHER_CODES)]),
            metadata=md,
        )
        assert loaded.loaded == VOUCHER_CODES


async def _check_over_grpc(
    address: str, md: tuple[tuple[str, str], ...], totals: dict[str, Decimal]
) -> None:
    """What clients see: every member's achieved value and balance."""
    async with grpc.aio.insecure_channel(address) as channel:
        rewards = rewards_pb2_grpc.RewardServiceStub(channel)
        progress = progress_pb2_grpc.ProgressServiceStub(channel)
        sem = asyncio.Semaphore(16)

        async def check(member: str) -> None:
            async with sem:
                got = await progress.GetProgress(
                    ppb.GetProgressRequest(member_id=member, target_code=TARGET), metadata=md
                )
                assert Decimal(got.progress.achieved_value.value) == totals[member], member
                balance = await rewards.GetBalance(
                    rpb.GetBalanceRequest(member_id=member), metadata=md
                )
                points = sum(b.points for b in balance.balances)
                assert points == expected_points(totals[member]), (member, balance)

        await asyncio.gather(*(check(member) for member in sorted(totals)))


def _report(seed: int, kills: list[Kill], started: float) -> None:
    print(f"\ncrash test seed {seed}, {len(kills)} kills, {time.monotonic() - started:.1f}s")
    for k in kills:
        print(
            f"  kill {k.round} {k.mode:<19} delay {k.delay:.3f}s"
            f" stored {k.stored_before:>4} -> {k.stored_after:>4} awards {k.awards_after:>4}"
            f" open transaction {k.in_transaction!s:<5} writes {k.writes_uncommitted!s:<5}"
            f" awards {k.awards_uncommitted!s:<5} stream {k.stream} ({k.seconds:.1f}s)"
        )
