"""Two server processes on one PostgreSQL: concurrent writes give the totals of a serial run."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import progress_pb2 as ppb
from attain.v1 import progress_pb2_grpc, rewards_pb2_grpc, targets_pb2_grpc
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application.brands import create_brand
from conftest import FakeClock, start_api
from support import D, auth, start_server


@pytest.fixture
async def second_replica(pg_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """`attain-server serve` in its own process on the same database; yields its address."""
    env = {**os.environ, "ATTAIN_KEY_CACHE_SECONDS": "0"}
    proc, address = await asyncio.to_thread(
        start_server, tmp_path / "replica.log", "--database-url", pg_url, env=env
    )
    try:
        yield address
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


def _ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


def _sale(txn_id: str, member: str, amount: str, when: datetime) -> ppb.RecordTransactionRequest:
    return ppb.RecordTransactionRequest(
        transaction=ppb.Transaction(
            id=txn_id,
            member_id=member,
            occurred_time=_ts(when),
            store_id="S",
            type=ppb.TRANSACTION_TYPE_SALE,
            lines=[ppb.TransactionLine(sku="A", quantity=D("1"), amount=D(amount))],
        )
    )


@dataclass
class Replicas:
    """Replica A in this process, replica B in its own, one brand with a SALES target."""

    a: grpc.aio.Channel
    b: grpc.aio.Channel
    md: tuple[tuple[str, str], ...]
    now: datetime


@pytest.fixture
async def replicas(pg_url: str, second_replica: str) -> AsyncIterator[Replicas]:
    running, channel_a = await start_api(pg_url, FakeClock())
    channel_b = grpc.aio.insecure_channel(second_replica)
    try:
        now = datetime.now(UTC)
        _, _, secret = await create_brand(
            db=running.app.db, code=f"R{random.randrange(10**9)}", time_zone="UTC", now=now
        )
        yield Replicas(channel_a, channel_b, auth(secret), now)
    finally:
        await channel_b.close()
        await channel_a.close()
        await running.stop(grace=1)


async def _setup(
    r: Replicas, value: str, members: list[str], rules: list[tpb.RewardRule] | None = None
) -> None:
    admin_stub = targets_pb2_grpc.TargetServiceStub(r.a)
    await admin_stub.CreateTarget(
        tpb.CreateTargetRequest(
            target=tpb.Target(
                code="SALES",
                criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D(value))],
                period=tpb.Period(
                    kind=typ.PERIOD_KIND_MONTHLY,
                    start_date=r.now.date().replace(day=1).isoformat(),
                ),
                rules=rules or [],
            )
        ),
        metadata=r.md,
    )
    for member in members:
        await admin_stub.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id=member)), metadata=r.md
        )


async def test_concurrent_writes_on_two_replicas_equal_a_serial_run(replicas: Replicas) -> None:
    r = replicas
    await _setup(r, "1000000", ["M"])
    stub_a = progress_pb2_grpc.ProgressServiceStub(r.a)
    stub_b = progress_pb2_grpc.ProgressServiceStub(r.b)
    rng = random.Random(7)
    amounts = {f"T{i}": Decimal(rng.randrange(1, 100000)) / 100 for i in range(300)}
    # Every transaction goes to both replicas at once, some twice more: only one may count.
    deliveries = [(tid, stub) for tid in amounts for stub in (stub_a, stub_b)]
    deliveries += [(tid, stub_a) for tid in list(amounts)[:50]]
    rng.shuffle(deliveries)
    gate = asyncio.Semaphore(32)

    async def deliver(tid: str, stub: Any) -> int:
        async with gate:
            response = await stub.RecordTransaction(
                _sale(tid, "M", str(amounts[tid]), r.now), metadata=r.md
            )
            return int(response.outcome)

    outcomes = await asyncio.gather(*(deliver(t, s) for t, s in deliveries))
    assert outcomes.count(ppb.RECORD_OUTCOME_ACCEPTED) == len(amounts)
    assert outcomes.count(ppb.RECORD_OUTCOME_DUPLICATE) == len(deliveries) - len(amounts)
    for stub in (stub_a, stub_b):
        got = await stub.GetProgress(
            ppb.GetProgressRequest(member_id="M", target_code="SALES"), metadata=r.md
        )
        assert Decimal(got.progress.achieved_value.value) == sum(amounts.values())
        assert got.progress.version >= 1


async def test_a_watch_on_one_replica_sees_writes_made_on_the_other(replicas: Replicas) -> None:
    r = replicas
    await _setup(r, "100", ["M"])
    watch: Any = progress_pb2_grpc.ProgressServiceStub(r.a).WatchProgress(
        ppb.WatchProgressRequest(member_id="M"), metadata=r.md
    )
    first = await asyncio.wait_for(watch.read(), 10)
    assert first.progress.achieved_value.value == "0"
    started = time.monotonic()
    await progress_pb2_grpc.ProgressServiceStub(r.b).RecordTransaction(
        _sale("X", "M", "42.50", r.now), metadata=r.md
    )
    second = await asyncio.wait_for(watch.read(), 10)
    assert second.progress.achieved_value.value == "42.50"
    # LISTEN/NOTIFY, not the 5-second safety poll, carried it across.
    assert time.monotonic() - started < 4
    watch.cancel()


async def test_threshold_crossings_delivered_to_both_replicas_award_once(
    replicas: Replicas,
) -> None:
    r = replicas
    members = [f"M{i}" for i in range(20)]
    milestones = [
        tpb.Milestone(attainment_percent=D("50"), incentive=typ.Incentive(points=5)),
        tpb.Milestone(attainment_percent=D("100"), incentive=typ.Incentive(points=10)),
    ]
    await _setup(
        r, "100", members, [tpb.RewardRule(milestones=tpb.MilestonesRule(milestones=milestones))]
    )
    stubs = [progress_pb2_grpc.ProgressServiceStub(c) for c in (r.a, r.b)]

    async def deliver(member: str, part: int, stub: Any) -> None:
        await stub.RecordTransaction(_sale(f"{member}-{part}", member, "60", r.now), metadata=r.md)

    # Two sales of 60 per member, each delivered three times across both replicas.
    deliveries = [(m, part, stubs[k % 2]) for m in members for part in (1, 2) for k in range(3)]
    random.Random(3).shuffle(deliveries)
    await asyncio.gather(*(deliver(m, part, stub) for m, part, stub in deliveries))
    rewards = rewards_pb2_grpc.RewardServiceStub(r.b)
    listed = await rewards.ListAwards(rpb.ListAwardsRequest(page_size=1000), metadata=r.md)
    per_member: dict[str, list[int]] = {}
    for award in listed.awards:
        per_member.setdefault(award.member_id, []).append(award.points)
    assert {m: sorted(p) for m, p in per_member.items()} == {m: [5, 10] for m in members}
    for member in members:
        balance = await rewards.GetBalance(rpb.GetBalanceRequest(member_id=member), metadata=r.md)
        assert [b.points for b in balance.balances] == [15]
