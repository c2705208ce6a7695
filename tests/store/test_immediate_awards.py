"""Immediate awards in batches: given by the sale that crosses, once, whatever the batch
shape, with or without reply snapshots, on both databases."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from attain_server.application.ingest import Outcome, OutcomeStatus, Recorder
from attain_server.application.targets import create_target
from attain_server.domain.kpis import Line
from attain_server.domain.model import (
    Incentive,
    IncentiveKind,
    Milestone,
    MilestonesSpec,
    RewardRule,
)
from attain_server.domain.transactions import Transaction, TransactionType
from support import amount_target, brand_with_members, migrated

NOW = datetime(2026, 11, 20, tzinfo=UTC)
STEPS = RewardRule(
    "steps",
    MilestonesSpec(
        tuple(
            Milestone(Decimal(p), Incentive(IncentiveKind.POINTS, points=p)) for p in (50, 75, 100)
        )
    ),
)


def _sale(txn_id: str, member: str, amount: str) -> Transaction:
    line = Line("A", "x", Decimal(1), Decimal(amount))
    return Transaction(txn_id, member, NOW, "S", TransactionType.SALE, (line,))


def _return(txn_id: str, member: str, original: str, amount: str) -> Transaction:
    line = Line("A", "x", Decimal(1), Decimal(amount))
    return Transaction(txn_id, member, NOW, "S", TransactionType.RETURN, (line,), original)


def _milestones(outcome: Outcome) -> list[str]:
    return [a.milestone for a in outcome.awards]


@pytest.mark.parametrize("snapshots", [False, True])
async def test_each_threshold_pays_once_to_the_sale_that_crosses_it(
    database_url: str, snapshots: bool
) -> None:
    async with migrated(database_url) as db:
        brand = f"I{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1", "M2"], NOW)
        target = amount_target("T", NOW.date().replace(day=1), Decimal(100))
        await create_target(
            db=db,
            brand=brand,
            now=NOW,
            definition=dataclasses.replace(target, rules=(STEPS,)),
        )
        recorder = Recorder(db, lambda: NOW)

        async def record(*txns: Transaction) -> list[Outcome]:
            return await recorder.record(brand, list(txns), snapshots=snapshots)

        first = await record(_sale("S1", "M1", "60"))
        assert _milestones(first[0]) == ["50"]
        # One batch: a sale crossing 75 and 100 (50 is already paid), its duplicate, a sale
        # of another member crossing nothing, and a sale after the crossing one.
        batch = await record(
            _sale("S2", "M1", "45"),
            _sale("S2", "M1", "45"),
            _sale("S3", "M2", "10"),
            _sale("S4", "M1", "5"),
        )
        assert [o.status for o in batch] == [
            OutcomeStatus.ACCEPTED,
            OutcomeStatus.DUPLICATE,
            OutcomeStatus.ACCEPTED,
            OutcomeStatus.ACCEPTED,
        ]
        assert [_milestones(o) for o in batch] == [["75", "100"], [], [], []]
        # Returns take M1 from 110 down to 5 (the awards stay: KEEP); crossing 50 and 75
        # again pays nothing.
        back = await record(_return("R1", "M1", "S1", "60"), _return("R2", "M1", "S2", "45"))
        assert [o.status for o in back] == [OutcomeStatus.ACCEPTED] * 2
        again = await record(_sale("S5", "M1", "70"))
        assert again[0].status is OutcomeStatus.ACCEPTED and _milestones(again[0]) == []
        # M2 crosses 50 and 75 in one sale of a batch that also holds M1's next sale.
        both = await record(_sale("S6", "M1", "1"), _sale("S7", "M2", "70"))
        assert [_milestones(o) for o in both] == [[], ["50", "75"]]
