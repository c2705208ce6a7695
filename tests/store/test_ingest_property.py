"""Properties: stored progress equals a recount of what was accepted, and after the close
the ledger holds exactly what the rules give on the final progress.

Random sales, partial returns, duplicate and conflicting redeliveries, split into random
batches, across random period kinds and time zones, recorded by the real Recorder into a
real database; then every progress row is compared with a recount over the accepted
transactions alone.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import col, select

from attain_server.application.brands import create_brand
from attain_server.application.ingest import OutcomeStatus, Recorder
from attain_server.application.members import upsert_member
from attain_server.application.rewards import close_cycle
from attain_server.application.targets import create_target
from attain_server.domain.kpis import EMPTY, Line, Sale, Tally, contribution, net_lines
from attain_server.domain.model import (
    Audience,
    AudienceKind,
    Criterion,
    CriterionFilter,
    FixedSpec,
    Incentive,
    IncentiveKind,
    Kpi,
    Member,
    Milestone,
    MilestonesSpec,
    PercentageSpec,
    Period,
    PeriodKind,
    PerXSpec,
    ReversalPolicy,
    RewardRule,
    Rounding,
    TargetDefinition,
)
from attain_server.domain.periods import Calendar
from attain_server.domain.rewards import capped, close_due, immediate_due, is_immediate
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from attain_server.store.progress import state_from_row
from attain_server.store.tables import LedgerEntryRow, ProgressRow

ZONES = [
    "Asia/Jakarta",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "UTC",
    "Australia/Lord_Howe",
    "America/Santiago",
]
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
_counter = itertools.count()

money = st.integers(min_value=0, max_value=50_000).map(lambda c: Decimal(c).scaleb(-2))
qty = st.integers(min_value=1, max_value=500).map(lambda c: Decimal(c).scaleb(-1))
lines = st.lists(
    st.builds(
        Line,
        sku=st.sampled_from(["A", "B", "C"]),
        category=st.sampled_from(["x", "y"]),
        quantity=qty,
        amount=money,
    ),
    min_size=1,
    max_size=3,
)
periods = st.sampled_from(
    [
        Period(PeriodKind.MONTHLY, date(2026, 1, 1)),
        Period(PeriodKind.QUARTERLY, date(2026, 2, 15)),
        Period(PeriodKind.YEARLY, date(2025, 1, 1)),
        Period(PeriodKind.CUSTOM, date(2026, 10, 1), date(2026, 11, 15)),
        Period(PeriodKind.EVERY_N_DAYS, date(2026, 9, 3), None, 13),
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    events: list[tuple[str, Any]] = []
    sales: list[tuple[str, tuple[Line, ...]]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=25))):
        kind = draw(st.sampled_from(["sale", "sale", "return", "duplicate", "conflict"]))
        if kind == "sale" or not sales:
            tid = f"S{len(events)}"
            drawn = tuple(draw(lines))
            minutes = draw(st.integers(min_value=0, max_value=60 * 24 * 70))
            member = draw(st.sampled_from(["M1", "M2"]))
            store = draw(st.sampled_from(["S1", "S2"]))
            events.append(("sale", (tid, member, NOW - timedelta(minutes=minutes), store, drawn)))
            sales.append((tid, drawn))
        elif kind == "return":
            original, original_lines = draw(st.sampled_from(sales))
            line = draw(st.sampled_from(original_lines))
            events.append(
                (
                    "return",
                    (
                        f"R{len(events)}",
                        original,
                        line.sku,
                        draw(st.sampled_from([Decimal(0), line.quantity / 2])),
                        draw(st.sampled_from([line.amount, line.amount / 4, line.amount + 1])),
                    ),
                )
            )
        else:
            events.append((kind, draw(st.integers(min_value=0, max_value=len(events) - 1))))
    return {
        "zone": draw(st.sampled_from(ZONES)),
        "period": draw(periods),
        "events": events,
        "cuts": draw(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=8)),
    }


RULES = (
    RewardRule(
        "fixed",
        FixedSpec(Incentive(IncentiveKind.POINTS, points=100), Decimal(80)),
        reversal_policy=ReversalPolicy.REVERSE_AT_CLOSE,
    ),
    RewardRule(
        "steps",
        MilestonesSpec(
            (
                Milestone(Decimal(10), Incentive(IncentiveKind.POINTS, points=7)),
                Milestone(Decimal(50), Incentive(IncentiveKind.POINTS, points=30)),
                Milestone(Decimal(100), Incentive(IncentiveKind.POINTS, points=30)),
            )
        ),
        cap_points=50,
        reversal_policy=ReversalPolicy.REVERSE_AT_CLOSE,
    ),
    RewardRule("pct", PercentageSpec(Decimal("12.5")), cap_points=900),
    RewardRule(
        "perx",
        PerXSpec(Decimal("7.5"), 3),
        min_attainment_percent=Decimal(5),
        rounding=Rounding.HALF_UP,
    ),
)

CRITERIA = (
    Criterion("amount", Kpi.TRANSACTION_AMOUNT, Decimal(1000)),
    Criterion("sku_amount", Kpi.SKU_AMOUNT, Decimal(100), CriterionFilter(skus=("A", "B"))),
    Criterion("sku_qty", Kpi.SKU_QUANTITY, Decimal(10), CriterionFilter(skus=("C",))),
    Criterion(
        "count",
        Kpi.TRANSACTION_COUNT,
        Decimal(5),
        CriterionFilter(min_transaction_amount=Decimal(50)),
    ),
    Criterion("visits", Kpi.VISIT_COUNT, Decimal(3), CriterionFilter(stores=("S1",))),
    Criterion(
        "cats",
        Kpi.DISTINCT_CATEGORIES,
        Decimal(2),
        CriterionFilter(min_transaction_quantity=Decimal(2)),
    ),
)


def _transactions(events: list[tuple[str, Any]]) -> list[Transaction]:
    out: list[Transaction] = []
    by_id: dict[str, Transaction] = {}
    for kind, data in events:
        if kind == "sale":
            tid, member, when, store, drawn = data
            t = Transaction(tid, member, when, store, TransactionType.SALE, drawn)
        elif kind == "return":
            tid, original, sku, quantity, amount = data
            sale = by_id[original]
            t = Transaction(
                tid,
                sale.member_id,
                NOW,
                "S1",
                TransactionType.RETURN,
                (Line(sku, "", quantity, amount),),
                original,
            )
        elif kind == "duplicate":
            t = out[data]
        else:  # the same id with other content
            earlier = out[data]
            t = replace(earlier, store_id=earlier.store_id + "-changed")
        out.append(t)
        by_id.setdefault(t.id, t)
    return out


def _recount(
    accepted: list[Transaction], targets: list[TargetDefinition], zone: ZoneInfo
) -> dict[tuple[str, str, str], dict[str, Decimal]]:
    nets: dict[str, tuple[Line, ...]] = {}
    sales: dict[str, Transaction] = {}
    for t in accepted:
        if t.type is TransactionType.SALE:
            sales[t.id], nets[t.id] = t, t.lines
        else:
            nets[t.original_id] = net_lines(nets[t.original_id], t.lines)
    tallies: dict[tuple[str, str, str], dict[str, Tally]] = {}
    for target in targets:
        calendar = Calendar(target.period, zone, target.offset_days)
        for sid, t in sales.items():
            window = calendar.cycle_at(t.occurred_at)
            if window is None:
                continue
            sale = Sale(sid, t.occurred_at, t.store_id, nets[sid])
            row = tallies.setdefault(
                (target.code, window.name, t.member_id), {c.id: Tally() for c in target.criteria}
            )
            for c in target.criteria:
                row[c.id].apply(EMPTY, contribution(c, sale, zone))
    kpis = {c.id: c.kpi for target in targets for c in target.criteria}
    return {
        key: {cid: t.value(kpis[cid]) for cid, t in row.items()} for key, row in tallies.items()
    }


async def _run(url: str, scenario: dict[str, Any]) -> None:
    db = Database(url)
    try:
        await db.migrate()
        brand = f"P{next(_counter)}x{id(scenario)}"
        await create_brand(db=db, code=brand, time_zone=scenario["zone"], now=NOW)
        for member in ("M1", "M2"):
            await upsert_member(db=db, brand=brand, member=Member(member), now=NOW)
        definition = TargetDefinition(
            code="T",
            criteria=CRITERIA,
            period=scenario["period"],
            offset_days=366,
            audience=Audience(AudienceKind.ALL_MEMBERS),
        )
        # One criterion, so thresholds are reached (and lost to returns) often.
        rewarded = TargetDefinition(
            code="R",
            criteria=(Criterion("amount", Kpi.TRANSACTION_AMOUNT, Decimal(400)),),
            period=scenario["period"],
            offset_days=366,
            rules=RULES,
        )
        for target in (definition, rewarded):
            await create_target(db=db, brand=brand, definition=target, now=NOW)
        recorder = Recorder(db, lambda: NOW)
        txns = _transactions(scenario["events"])
        accepted: list[Transaction] = []
        start = 0
        for n, cut in enumerate(itertools.cycle(scenario["cuts"])):
            batch = txns[start : start + cut]
            if not batch:
                break
            # Batches with and without reply snapshots: without, a batch reads the awards
            # rows already have only where its sales crossed a threshold.
            outcomes = await recorder.record(brand, batch, snapshots=n % 2 == 0)
            for t, outcome in zip(batch, outcomes, strict=True):
                if outcome.status is OutcomeStatus.ACCEPTED:
                    accepted.append(t)
            start += cut
        # Redeliver everything once more in one batch: nothing may change.
        again = await recorder.record(brand, txns)
        assert all(o.status is not OutcomeStatus.ACCEPTED for o in again)
        expected = _recount(accepted, [definition, rewarded], ZoneInfo(scenario["zone"]))
        async with db.read() as s:
            rows = (await s.exec(select(ProgressRow).where(ProgressRow.brand_code == brand))).all()
        stored = {}
        kpis = {c.id: c.kpi for t in (definition, rewarded) for c in t.criteria}
        for row in rows:
            assert type(row.attainment) is Decimal
            values = {}
            for cid, tally in row.tallies.items():
                assert isinstance(tally["total"], str)  # decimals stay strings in JSON
                values[cid] = Tally.from_json(tally).value(kpis[cid])
            stored[(row.target_code, row.cycle, row.member_id)] = values

        def nonzero(d: dict[Any, dict[str, Decimal]]) -> dict[Any, dict[str, Decimal]]:
            return {k: v for k, v in d.items() if any(v.values())}

        assert nonzero(stored) == nonzero(expected)
        await _check_ledger(db, brand, rewarded, [r for r in rows if r.target_code == "R"])
    finally:
        await db.dispose()


async def _check_ledger(
    db: Database, brand: str, definition: TargetDefinition, rows: Sequence[ProgressRow]
) -> None:
    """Close every cycle; then each member's ledger is what the rules give on final progress."""
    later = datetime(2031, 1, 1, tzinfo=UTC)
    for cycle in sorted({r.cycle for r in rows}):
        await close_cycle(db=db, brand=brand, target_code="R", cycle=cycle, now=later)
        again = await close_cycle(db=db, brand=brand, target_code="R", cycle=cycle, now=later)
        assert again.already_closed
    expected: dict[str, int] = defaultdict(int)
    for row in rows:
        state = state_from_row(row, definition)
        standing = state.evaluate(definition)
        for rule in definition.rules:
            if is_immediate(rule):
                given = 0
                for due in immediate_due(rule, standing, state.level):
                    allowed = capped(rule, due, given)
                    if allowed is not None:
                        given += allowed.incentive.points
                expected[row.member_id] += given
            else:
                close = close_due(rule, standing, state.level)
                expected[row.member_id] += close.incentive.points if close else 0
    async with db.read() as s:
        sums = dict(
            (
                await s.exec(
                    select(LedgerEntryRow.member_id, func.sum(LedgerEntryRow.points))
                    .where(LedgerEntryRow.brand_code == brand)
                    .group_by(col(LedgerEntryRow.member_id))
                )
            ).all()
        )
    assert {m: int(v) for m, v in sums.items() if v} == {m: v for m, v in expected.items() if v}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_incremental_progress_equals_a_recount_on_sqlite(
    sqlite_url: str, scenario: dict[str, Any]
) -> None:
    asyncio.run(_run(sqlite_url, scenario))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_incremental_progress_equals_a_recount_on_postgresql(
    pg_url: str, scenario: dict[str, Any]
) -> None:
    asyncio.run(_run(pg_url, scenario))
