"""Cycle close at scale, and what immediate rules cost at ingest.

1. For SQLite (temp file) and PostgreSQL (fresh database): 100,000 members with progress on
   one MONTHLY TRANSACTION_AMOUNT target with a PERCENTAGE rule (10%) in last month's cycle,
   loaded with Core executemany. Timed: ``close_cycle`` (every award and ledger entry), a
   second close (must write nothing), and a close with the ``cycle_close`` row deleted but
   every award present (must add nothing).
2. On SQLite: ``Recorder.record`` directly (no gRPC), batches of 1 and of 1,000 transactions,
   for a target without rules and the same target with a MILESTONES rule (25/50/100%).

Run from the repository root: ``.venv/bin/python -m bench.close`` (``--help`` for options).
It prints tables and rewrites the "## Cycle close (bench/close)" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.application.awards import load_existing_range
from attain_server.application.brands import create_brand
from attain_server.application.ingest import OutcomeStatus, Recorder
from attain_server.application.rewards import CLOSE_CHUNK, close_cycle
from attain_server.application.targets import create_target
from attain_server.domain import attainment as att
from attain_server.domain.kpis import Line
from attain_server.domain.model import (
    Criterion,
    Incentive,
    IncentiveKind,
    Kpi,
    Milestone,
    MilestonesSpec,
    PercentageSpec,
    Period,
    PeriodKind,
    RewardRule,
    Rounding,
    TargetDefinition,
)
from attain_server.domain.periods import Calendar, CycleState
from attain_server.domain.progress import RANK_SCALE
from attain_server.domain.rewards import percentage_points
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store._runner.asyncpg import AsyncpgRunner
from attain_server.store.engine import Database
from attain_server.store.tables import (
    AwardEventRow,
    AwardRow,
    CycleCloseRow,
    LedgerEntryRow,
    ProgressRow,
)
from attain_service.process import settle_collector

from . import common

HEADING = "## Cycle close (bench/close)"
BRAND = "BENCH"
TARGET = "CLOSE"
PERCENT = Decimal(10)
TARGET_VALUE = Decimal(1000)
CLOSE_TARGET_SECONDS = 10.0
# The whole run stops by itself after this (cleaning up as on any failure).
WATCHDOG_SECONDS = 30 * 60

# Ingest cost: every member gets TXNS_PER_MEMBER sales of AMOUNT against INGEST_TARGET, so it
# crosses 25% at its 3rd sale, 50% at its 5th and 100% at its 10th: 3 awards per member.
INGEST_TARGET = Decimal(1000)
AMOUNT = Decimal("100.00")
TXNS_PER_MEMBER = 10
MILESTONES = RewardRule(
    "steps",
    MilestonesSpec(
        (
            Milestone(Decimal(25), Incentive(IncentiveKind.POINTS, points=10)),
            Milestone(Decimal(50), Incentive(IncentiveKind.POINTS, points=20)),
            Milestone(Decimal(100), Incentive(IncentiveKind.POINTS, points=50)),
        )
    ),
)


@dataclass(frozen=True)
class Plan:
    members: int = 100_000
    runs: int = 3
    # Ingest: members per run for batches of 1 and of 1,000 (x TXNS_PER_MEMBER transactions).
    unary_members: int = 200
    batch_members: int = 2_000
    batch_size: int = 1_000
    profile: bool = True
    # A first close slower than this is not repeated (the run would take too long).
    long_close: float = 120.0


@dataclass
class Counts:
    awards: int
    award_points: int
    ledger: int
    ledger_points: int
    events: int
    closes: int


@dataclass
class CloseFigures:
    database: str
    skipped: str = ""
    load_seconds: float = 0.0
    expected_awards: int = 0
    expected_points: int = 0
    first: list[float] = field(default_factory=list)
    second: list[float] = field(default_factory=list)
    redo: list[float] = field(default_factory=list)
    counts: Counts | None = None
    profile: common.Profile | None = None
    redo_profile: common.Profile | None = None
    first_cpu: list[float] = field(default_factory=list)
    note: str = ""
    plan_stale: str = ""  # PostgreSQL: a close chunk's award lookup planned after the first close
    plan_fresh: str = ""  # ... and after ANALYZE


@dataclass
class IngestFigures:
    batch: int
    transactions: int
    plain: list[float] = field(default_factory=list)
    milestones: list[float] = field(default_factory=list)
    awards_per_run: int = 0


# ---------------------------------------------------------------- cycle close


def _amount(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _progress_row(
    cycle: str, member: str, amount: Decimal, opened: datetime, updated: datetime
) -> dict[str, Any]:
    attainment = att.attainment_percent(amount, TARGET_VALUE)
    return {
        "brand_code": BRAND,
        "target_code": TARGET,
        "cycle": cycle,
        "member_id": member,
        "level": "",
        "target_values": {"c1": format(TARGET_VALUE, "f")},
        "tallies": {"c1": {"total": format(amount, "f"), "key_counts": {}}},
        "attainment": attainment,
        "rank_key": int((attainment * RANK_SCALE).to_integral_value(rounding=ROUND_FLOOR)),
        "complete": amount >= TARGET_VALUE,
        "version": 1,
        "open_time": opened,
        "update_time": updated,
    }


async def _counts(db: Database) -> Counts:
    async with db.read() as s:

        async def one(q: Any) -> int:
            return int((await s.exec(q)).one() or 0)

        def count(model: Any) -> Any:
            return select(func.count()).select_from(model).where(model.brand_code == BRAND)

        return Counts(
            awards=await one(count(AwardRow)),
            award_points=await one(
                select(func.sum(AwardRow.points)).where(AwardRow.brand_code == BRAND)
            ),
            ledger=await one(count(LedgerEntryRow)),
            ledger_points=await one(
                select(func.sum(LedgerEntryRow.points)).where(LedgerEntryRow.brand_code == BRAND)
            ),
            events=await one(count(AwardEventRow)),
            closes=await one(count(CycleCloseRow)),
        )


async def _delete(s: AsyncSession, *tables: Any) -> None:
    for t in tables:
        await s.exec(delete(t).where(t.c.brand_code == BRAND))


def _tables(*models: Any) -> list[Any]:
    return [m.__table__ for m in models]


async def _award_plan(db: Database, cycle: str, members: Sequence[str]) -> str:
    """PostgreSQL: how the award lookup of the first close chunk is planned with the
    statistics as they are now. The statement is the one ``close_cycle`` runs for a chunk
    (``load_existing_range`` over the chunk's members: a range of member ids), captured as
    sent and EXPLAINed with its parameters."""
    if db.dialect != "postgresql":
        return ""
    sent: list[tuple[str, Any]] = []
    # The lookup runs through the store's driver runner, straight on asyncpg (decision
    # 0010): capture it there.
    original = AsyncpgRunner.rows

    async def capture(
        runner: AsyncpgRunner, statement: str, parameters: Any, describe: bool
    ) -> Any:
        if re.search(r"\bFROM award\b", statement):
            sent.append((statement, parameters))
        return await original(runner, statement, parameters, describe)

    AsyncpgRunner.rows = capture  # type: ignore[method-assign,assignment]
    try:
        async with db.read() as s:
            await load_existing_range(s, BRAND, TARGET, cycle, members[:CLOSE_CHUNK])
    finally:
        AsyncpgRunner.rows = original  # type: ignore[method-assign]
    _check(len(sent) == 1, f"the award lookup of a chunk ran {len(sent)} award queries")
    statement, parameters = sent[0]
    async with db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql(f"EXPLAIN {statement}", tuple(parameters))).all()
    text = " / ".join(str(r[0]).strip() for r in rows)
    return re.sub(r"\s*\(cost=[^)]*\)", "", text)


async def _vacuum(db: Database) -> None:
    """PostgreSQL: VACUUM ANALYZE after deleting a run's rows (autovacuum would, later)."""
    if db.dialect != "postgresql":
        return
    async with db.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in ("award", "ledger_entry", "award_event", "cycle_close", "progress"):
            await auto.exec_driver_sql(f"VACUUM ANALYZE {name}")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(what)


async def bench_close(db: Database, label: str, plan: Plan, out_dir: Path) -> CloseFigures:
    fig = CloseFigures(label)
    now = datetime.now(UTC)
    await create_brand(db=db, code=BRAND, time_zone="UTC", now=now)
    last_month = (now.date().replace(day=1) - timedelta(days=1)).replace(day=1)
    definition = TargetDefinition(
        code=TARGET,
        criteria=(Criterion("c1", Kpi.TRANSACTION_AMOUNT, TARGET_VALUE),),
        period=Period(PeriodKind.MONTHLY, last_month),
        rules=(RewardRule("pct", PercentageSpec(PERCENT)),),
    )
    await create_target(db=db, brand=BRAND, definition=definition, now=now)
    window = Calendar(definition.period, ZoneInfo("UTC"), 0).first()
    _check(window.state_at(now) is CycleState.CLOSED, f"cycle {window.name} is not closed")
    cycle = window.name

    rng = random.Random(7)
    members = [f"M{i:06d}" for i in range(plan.members)]
    # 0.00 .. 2,500.00: attainment 0 .. 250%; under 10.00 the 10% is 0 points (no award).
    amounts = [_amount(rng.randrange(0, 250_001)) for _ in members]
    points = [percentage_points(a, PERCENT, Rounding.DOWN) for a in amounts]
    fig.expected_awards = sum(1 for p in points if p > 0)
    fig.expected_points = sum(points)
    opened, updated = window.start_time, window.end_time - timedelta(hours=1)

    began = time.perf_counter()
    await common.load_members(db, BRAND, members, now)
    await common.insert_rows(
        db,
        ProgressRow.__table__,  # type: ignore[attr-defined]
        [
            _progress_row(cycle, m, a, opened, updated)
            for m, a in zip(members, amounts, strict=True)
        ],
    )
    fig.load_seconds = time.perf_counter() - began
    await common.analyze(db)

    expected = Counts(
        fig.expected_awards,
        fig.expected_points,
        fig.expected_awards,
        fig.expected_points,
        fig.expected_awards,
        1,
    )

    async def close(profile: str = "") -> tuple[float, float, Any]:
        """(wall seconds, CPU seconds of this process, result); ``profile`` names a py-spy
        recording of it (this very process, non-blocking sampling)."""
        spy = (
            common.Spy(os.getpid(), out_dir / f"{profile}-{label.split()[0].lower()}.txt")
            if profile
            else None
        )
        try:
            t0, cpu0 = time.perf_counter(), time.process_time()
            result = await close_cycle(db=db, brand=BRAND, target_code=TARGET, cycle=cycle, now=now)
            return time.perf_counter() - t0, time.process_time() - cpu0, result
        finally:
            if spy is not None:
                found = spy.stop()
                if profile == "first":
                    fig.profile = found
                else:
                    fig.redo_profile = found

    settle_collector()  # as the worker process does once it has started (decision 0011)
    for run in range(plan.runs):
        profiled = plan.profile and run == 0
        if run and common.median(fig.first) > plan.long_close:
            fig.note = (
                f"one run only: its first close took {fig.first[0]:.0f} s "
                f"(over {plan.long_close:.0f} s)"
                if run == 1
                else f"{run} runs only: the median first close took "
                f"{common.median(fig.first):.0f} s (over {plan.long_close:.0f} s)"
            )
            break
        if run:
            async with db.write() as s:
                await _delete(s, *_tables(AwardEventRow, LedgerEntryRow, AwardRow, CycleCloseRow))
            await _vacuum(db)
        seconds, cpu, result = await close("first" if profiled else "")
        fig.first_cpu.append(cpu)
        _check(
            not result.already_closed and result.awards == fig.expected_awards,
            f"first close gave {result}, expected {fig.expected_awards} awards",
        )
        got = await _counts(db)
        _check(got == expected, f"after the first close: {got}, expected {expected}")
        fig.first.append(seconds)
        if run == 0:
            fig.plan_stale = await _award_plan(db, cycle, members)

        seconds, _, result = await close()
        _check(result.already_closed, f"second close did not see the close row: {result}")
        again = await _counts(db)
        _check(again == expected, f"the second close wrote something: {again}")
        fig.second.append(seconds)

        async with db.write() as s:
            await _delete(s, *_tables(CycleCloseRow))
        # PostgreSQL: statistics for the awards just written (autovacuum would, in a minute).
        await common.analyze(db)
        if run == 0:
            fig.plan_fresh = await _award_plan(db, cycle, members)
        seconds, _, result = await close("redo" if profiled else "")
        _check(
            not result.already_closed and result.awards == 0 and result.reversals == 0,
            f"close without its close row gave {result}",
        )
        again = await _counts(db)
        _check(again == expected, f"the close without its close row wrote awards: {again}")
        fig.redo.append(seconds)
        print(
            f"  {label} run {run + 1}: first close {fig.first[-1]:.2f} s, second "
            f"{fig.second[-1] * 1000:.1f} ms, without close row {fig.redo[-1]:.2f} s",
            file=sys.stderr,
        )
    fig.counts = expected
    return fig


# ---------------------------------------------------------------- immediate rules at ingest


async def bench_ingest(db: Database, plan: Plan) -> list[IngestFigures]:
    now = datetime.now(UTC)
    month = now.date().replace(day=1)
    brands = {"PLAIN": (), "MILES": (MILESTONES,)}
    for code, rules in brands.items():
        await create_brand(db=db, code=code, time_zone="UTC", now=now)
        await create_target(
            db=db,
            brand=code,
            now=now,
            definition=TargetDefinition(
                code="SALES",
                criteria=(Criterion("c1", Kpi.TRANSACTION_AMOUNT, INGEST_TARGET),),
                period=Period(PeriodKind.MONTHLY, month),
                rules=rules,
            ),
        )
    recorder = Recorder(db, lambda: datetime.now(UTC))
    line = (Line("SKU-1", "food", Decimal(1), AMOUNT),)
    # Run 0 is a warm-up; each run has its own members, so each one crosses every milestone.
    shapes = [(1, plan.unary_members), (plan.batch_size, plan.batch_members)]
    pools = {
        (size, run): [f"B{size}R{run}M{i:05d}" for i in range(count)]
        for size, count in shapes
        for run in range(plan.runs + 1)
    }
    for code in brands:
        await common.load_members(db, code, [m for p in pools.values() for m in p], now)
    occurred = now - timedelta(seconds=1)
    figures = []
    settle_collector()  # as the server and the worker do once they have started
    for size, count in shapes:
        fig = IngestFigures(size, count * TXNS_PER_MEMBER, awards_per_run=3 * count)
        for run in range(plan.runs + 1):
            order = list(brands) if run % 2 == 0 else list(brands)[::-1]
            for code in order:
                txns = [
                    Transaction(
                        f"{code}-{size}-{run}-{k}-{m}",
                        m,
                        occurred,
                        "S1",
                        TransactionType.SALE,
                        line,
                    )
                    for k in range(TXNS_PER_MEMBER)
                    for m in pools[(size, run)]
                ]
                t0 = time.perf_counter()
                for i in range(0, len(txns), size):
                    outcomes = await recorder.record(code, txns[i : i + size])
                    if any(o.status is not OutcomeStatus.ACCEPTED for o in outcomes):
                        raise AssertionError(f"not accepted: {outcomes[0]}")
                rate = len(txns) / (time.perf_counter() - t0)
                if run:
                    (fig.plain if code == "PLAIN" else fig.milestones).append(rate)
        figures.append(fig)
        print(
            f"  ingest, batches of {size}: no rules {common.median(fig.plain):,.0f} tx/s, "
            f"MILESTONES {common.median(fig.milestones):,.0f} tx/s",
            file=sys.stderr,
        )
    async with db.read() as s:
        given: dict[str, int] = {
            str(b): int(n)
            for b, n in (
                await s.exec(
                    select(AwardRow.brand_code, func.count()).group_by(col(AwardRow.brand_code))
                )
            ).all()
        }
    want = 3 * sum(len(p) for p in pools.values())
    _check(given.get("PLAIN", 0) == 0, f"awards without rules: {given}")
    _check(given.get("MILES", 0) == want, f"milestone awards {given}, expected {want}")
    return figures


# ---------------------------------------------------------------- report


def _s(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def close_table(figs: Sequence[CloseFigures], plan: Plan) -> list[str]:
    rows = [
        [
            "database",
            f"load {plan.members:,} members + progress rows (s)",
            "first close (s)",
            "awards / ledger entries / stream events written",
            "second close",
            "close with `cycle_close` deleted, awards present (s)",
        ]
    ]
    for f in figs:
        if f.skipped:
            rows.append([f.database, f"skipped: {f.skipped}", "", "", "", ""])
            continue
        c = f.counts
        assert c is not None
        runs = f" (median of {len(f.first)})" if len(f.first) != plan.runs else ""
        rows.append(
            [
                f.database,
                f"{f.load_seconds:.1f}",
                _s(common.median(f.first)) + runs,
                f"{c.awards:,} / {c.ledger:,} / {c.events:,} ({c.award_points:,} points)",
                _s(common.median(f.second)) + " (wrote nothing)",
                _s(common.median(f.redo)) + " (added nothing)",
            ]
        )
    return common.table(rows)


def targets_table(figs: Sequence[CloseFigures], plan: Plan) -> list[str]:
    rows = [["target (from the issue)", *(f.database for f in figs)]]
    row = [f"close of {plan.members:,} members < {CLOSE_TARGET_SECONDS:g} s"]
    for f in figs:
        if f.skipped:
            row.append("skipped")
            continue
        s = common.median(f.first)
        row.append(f"{'met' if s < CLOSE_TARGET_SECONDS else '**missed**'}: {s:.2f} s")
    rows.append(row)
    row = ["second close writes nothing"]
    for f in figs:
        row.append(
            "skipped"
            if f.skipped
            else "met: already_closed, award/ledger/event counts unchanged (checked every run)"
        )
    rows.append(row)
    return common.table(rows)


def ingest_table(figs: Sequence[IngestFigures]) -> list[str]:
    rows = [
        [
            "Recorder.record, SQLite",
            "transactions per run",
            "no rules (tx/s)",
            "MILESTONES 25/50/100% (tx/s)",
            "milestones / no rules",
            "awards per run",
        ]
    ]
    for f in figs:
        plain, miles = common.median(f.plain), common.median(f.milestones)
        rows.append(
            [
                f"batches of {f.batch:,}" + (" (like unary)" if f.batch == 1 else ""),
                f"{f.transactions:,}",
                f"{plain:,.0f}",
                f"{miles:,.0f}",
                f"{miles / plain:.0%}",
                f"{f.awards_per_run:,}",
            ]
        )
    return common.table(rows)


def markdown(
    plan: Plan,
    started: datetime,
    pg: str,
    autovacuum: str,
    busy: float,
    closes: Sequence[CloseFigures],
    ingest: Sequence[IngestFigures],
    elapsed: float,
) -> str:
    lines = [
        HEADING,
        "",
        common.machine_line(started, pg)
        + f". {common.quiet_note(busy)} The run took {elapsed:.0f} s. Every figure is the "
        f"**median of {plan.runs} runs** (load times: one load per database). Reproduce with "
        "`.venv/bin/python -m bench.close`.",
        "",
        f"### Closing a cycle of {plan.members:,} members (PERCENTAGE rule, 10%)",
        "",
        *close_table(closes, plan),
        "",
        *targets_table(closes, plan),
        "",
        f"- Setup per database: brand {BRAND} (zone UTC), a MONTHLY `TRANSACTION_AMOUNT` "
        f"target (value {TARGET_VALUE}) whose first cycle is last month (offset 0 days: "
        f"CLOSED now) with one PERCENTAGE rule of {PERCENT}% (rounding DOWN); "
        f"{plan.members:,} members and one progress row each (achieved 0.00 to 2,500.00 at "
        "random, 2 decimals), inserted with Core executemany. PostgreSQL gets `ANALYZE` after "
        "the load, before each close without its close row (fresh statistics for the awards "
        "just written) and `VACUUM ANALYZE` after each reset: "
        + (f"this cluster runs with `autovacuum = {autovacuum}`; " if autovacuum else "")
        + "autovacuum would do the same within a minute.",
        "- Timed: `close_cycle(...)` called directly (no gRPC, no worker), "
        f"{CLOSE_CHUNK:,} progress rows per unit of work, once the setup is done and the "
        "garbage collector settled as the worker settles it at start "
        "(`settle_collector()`, decision 0011). Every close is verified: award, "
        "ledger and stream-event counts and point sums equal what 10% of each member's "
        "achievement gives (members under 10.00 earn 0 points and get no award); the second "
        "close returns `already_closed`; the close with its `cycle_close` row deleted walks "
        "every chunk, returns 0 awards and leaves every count unchanged (it writes the close "
        "row again). Between runs the brand's awards, ledger entries, stream events and close "
        "row are deleted.",
    ]
    done = [f for f in closes if not f.skipped]
    if done:
        lines += ["", "### What bounds the close", ""]
    for f in done:
        first = common.median(f.first)
        cpu = common.median(f.first_cpu)
        text = (
            f"- **{f.database}**: the first close takes {first:.1f} s, "
            f"{first / plan.members * 1e6:,.0f} µs per member "
            f"({CLOSE_TARGET_SECONDS / plan.members * 1e6:,.0f} µs fits the "
            f"{CLOSE_TARGET_SECONDS:g}-second target); this process used {cpu:.1f} s of CPU "
            f"meanwhile ({cpu / first:.2f} cores: "
            + ("Python in this process is the bound)." if cpu / first > 0.8 else "it also waits).")
        )
        if f.plan_stale:
            text += (
                " Each chunk of "
                f"{CLOSE_CHUNK:,} progress rows first looks up the awards its members already "
                "have (`load_existing_range`: one query for the member ids from the chunk's "
                "first to its last). Right after the first close, with the statistics of an "
                "award table that had no award of this cycle (as for every brand's first "
                f"close), the first chunk's lookup is planned as: `{f.plan_stale}`"
            )
            if "Filter" in f.plan_stale and "member_id" in f.plan_stale.split("Filter", 1)[1]:
                text += (
                    ": it reads every award of the cycle written so far and keeps those in the "
                    "chunk's range, so the close slows down as it goes (quadratic in the number "
                    "of members)"
                )
            text += f". After `ANALYZE`: `{f.plan_fresh}`."
        if f.note:
            text += f" ({f.note}.)"
        if f.profile is not None:
            text += f" py-spy of the first run's first close: {f.profile.sentences()}"
        if f.redo_profile is not None:
            text += (
                " The close without its close row (nothing to write): "
                f"{f.redo_profile.sentences(4)}"
            )
        lines.append(text)
    if done:
        lines.append(
            "- The profiles are taken by py-spy attached to the benchmark process itself "
            "(`--gil --nonblocking`, 100 Hz) during the first run; their figures are among the "
            "medians. Work that SQLAlchemy runs in its greenlet shows without the Attain "
            "frames above it, so Attain's inclusive shares are lower bounds."
        )
    lines += [
        "",
        "### Immediate rules at ingest (SQLite)",
        "",
        *ingest_table(ingest),
        "",
        "- `Recorder.record` called directly (no gRPC) on a temp SQLite file: two brands, "
        f"each with one MONTHLY `TRANSACTION_AMOUNT` target of {INGEST_TARGET} for this month, "
        "one without rules and one with a MILESTONES rule (25% 10 points, 50% 20, 100% 50). "
        f"Each run gives its own fresh members {TXNS_PER_MEMBER} sales of {AMOUNT} each, round "
        "robin (so every member crosses all three milestones once: 3 awards, 3 ledger entries "
        "and 3 stream events per member, written in the batch that crosses them); the first "
        "sale of a member opens its progress row. Runs alternate between the two brands, after "
        "a warm-up run of each; every outcome is checked ACCEPTED and the award count verified "
        "at the end.",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


async def run(
    plan: Plan, output: Path | None, only: str, ingest_too: bool, wait_quiet: float
) -> int:
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    common.quiet_logs()
    busy = common.wait_quiet(wait_quiet)
    pg = await common.pg_version()
    autovacuum = await common.pg_setting("autovacuum")
    closes: list[CloseFigures] = []
    ingest: list[IngestFigures] = []
    out_dir = common.temp_folder("attain-bench-close-")
    try:
        if only in ("", "sqlite"):
            print("SQLite: loading and closing ...", file=sys.stderr)
            async with common.sqlite_database("attain-bench-close-") as db:
                closes.append(await bench_close(db, "SQLite", plan, out_dir))
        if only in ("", "postgres"):
            why = await common.pg_available()
            if why:
                closes.append(CloseFigures("PostgreSQL", skipped=why))
            else:
                print("PostgreSQL: loading and closing ...", file=sys.stderr)
                async with common.pg_database("attain_bench_close") as url:
                    db = Database(url)
                    try:
                        await db.migrate()
                        closes.append(
                            await bench_close(db, f"PostgreSQL {pg}".strip(), plan, out_dir)
                        )
                    finally:
                        await db.dispose()
        if ingest_too:
            print("SQLite: immediate rules at ingest ...", file=sys.stderr)
            async with common.sqlite_database("attain-bench-ingest-") as db:
                ingest = await bench_ingest(db, plan)
    finally:
        common.remove_folder(out_dir)
    elapsed = time.perf_counter() - t0
    print()
    print("\n".join(close_table(closes, plan)))
    print()
    print("\n".join(targets_table(closes, plan)))
    print()
    print("\n".join(ingest_table(ingest)))
    for f in closes:
        if f.profile is not None:
            print(f"\n{f.database} first close profile: {f.profile.sentences(8)}")
        if f.redo_profile is not None:
            print(f"\n{f.database} redo close profile: {f.redo_profile.sentences(8)}")
    if output is not None:
        common.write_section(
            output, HEADING, markdown(plan, started, pg, autovacuum, busy, closes, ingest, elapsed)
        )
        print(f"wrote the {HEADING!r} section of {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.close", description=__doc__)
    parser.add_argument("--members", type=int, default=Plan.members)
    parser.add_argument("--runs", type=int, default=Plan.runs)
    parser.add_argument("--only", choices=("sqlite", "postgres"), default="")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profiles")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest part")
    parser.add_argument("--output", type=Path, default=common.DOCS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--wait-quiet", type=float, default=120.0, help="seconds, at most")
    args = parser.parse_args(argv)
    plan = Plan(members=args.members, runs=args.runs, profile=not args.no_profile)

    common.arm(WATCHDOG_SECONDS)
    return asyncio.run(
        run(
            plan,
            None if args.no_write else args.output,
            args.only,
            not args.no_ingest,
            args.wait_quiet,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
