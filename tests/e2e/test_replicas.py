"""Two server processes on one PostgreSQL: concurrent writes give the totals of a serial run."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
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
from attain_server.application import admin
from conftest import FakeClock, start_api
from support import D, auth

BIN = Path(sys.executable).parent


@pytest.fixture
async def second_replica(pg_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """`attain-server serve` in its own process on the same database; yields its address."""
    env = {**os.environ, "ATTAIN_LOG_FORMAT": "json", "ATTAIN_KEY_CACHE_SECONDS": "0"}
    log_path = tmp_path / "replica.log"
    # The log goes to a file: a pipe nobody drains would block the server once full.
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
            [BIN / "attain-server", "serve", "--listen", "127.0.0.1:0", "--database-url", pg_url],
            stderr=log_file,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    try:
        yield await _address(log_path, proc)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


async def _address(log_path: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(log_path.read_text)
        for line in text.splitlines():
            if '"listening"' in line:
                return str(json.loads(line)["address"])
        if proc.poll() is not None:
            raise AssertionError(f"replica exited with {proc.returncode}: {text}")
        await asyncio.sleep(0.1)
    raise AssertionError("replica did not start in time")


def _ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


async def test_concurrent_writes_on_two_replicas_equal_a_serial_run(
    pg_url: str, second_replica: str
) -> None:
    running, channel_a = await start_api(pg_url, FakeClock())
    channel_b = grpc.aio.insecure_channel(second_replica)
    try:
        now = datetime.now(UTC)
        code = f"R{random.randrange(10**9)}"
        _, _, secret = await admin.create_brand(
            db=running.app.db, code=code, time_zone="UTC", now=now
        )
        md = auth(secret)
        stub_a = progress_pb2_grpc.ProgressServiceStub(channel_a)
        stub_b = progress_pb2_grpc.ProgressServiceStub(channel_b)
        admin_stub = targets_pb2_grpc.TargetServiceStub(channel_a)
        await admin_stub.CreateTarget(
            tpb.CreateTargetRequest(
                target=tpb.Target(
                    code="SALES",
                    criteria=[
                        tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D("1000000"))
                    ],
                    period=tpb.Period(
                        kind=typ.PERIOD_KIND_MONTHLY,
                        start_date=now.date().replace(day=1).isoformat(),
                    ),
                )
            ),
            metadata=md,
        )
        await admin_stub.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id="M")), metadata=md
        )
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
                    ppb.RecordTransactionRequest(
                        transaction=ppb.Transaction(
                            id=tid,
                            member_id="M",
                            occurred_time=_ts(now),
                            store_id="S",
                            type=ppb.TRANSACTION_TYPE_SALE,
                            lines=[
                                ppb.TransactionLine(
                                    sku="X", quantity=D("1"), amount=D(str(amounts[tid]))
                                )
                            ],
                        )
                    ),
                    metadata=md,
                )
                return int(response.outcome)

        outcomes = await asyncio.gather(*(deliver(t, s) for t, s in deliveries))
        assert outcomes.count(ppb.RECORD_OUTCOME_ACCEPTED) == len(amounts)
        assert outcomes.count(ppb.RECORD_OUTCOME_DUPLICATE) == len(deliveries) - len(amounts)
        for stub in (stub_a, stub_b):
            got = await stub.GetProgress(
                ppb.GetProgressRequest(member_id="M", target_code="SALES"), metadata=md
            )
            assert Decimal(got.progress.achieved_value.value) == sum(amounts.values())
            assert got.progress.version >= 1
    finally:
        await channel_b.close()
        await channel_a.close()
        await running.stop(grace=1)


async def test_a_watch_on_one_replica_sees_writes_made_on_the_other(
    pg_url: str, second_replica: str
) -> None:
    running, channel_a = await start_api(pg_url, FakeClock())
    channel_b = grpc.aio.insecure_channel(second_replica)
    try:
        now = datetime.now(UTC)
        _, _, secret = await admin.create_brand(
            db=running.app.db, code=f"W{random.randrange(10**9)}", time_zone="UTC", now=now
        )
        md = auth(secret)
        admin_stub = targets_pb2_grpc.TargetServiceStub(channel_a)
        await admin_stub.CreateTarget(
            tpb.CreateTargetRequest(
                target=tpb.Target(
                    code="SALES",
                    criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D("100"))],
                    period=tpb.Period(
                        kind=typ.PERIOD_KIND_MONTHLY,
                        start_date=now.date().replace(day=1).isoformat(),
                    ),
                )
            ),
            metadata=md,
        )
        await admin_stub.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id="M")), metadata=md
        )
        watch: Any = progress_pb2_grpc.ProgressServiceStub(channel_a).WatchProgress(
            ppb.WatchProgressRequest(member_id="M"), metadata=md
        )
        first = await asyncio.wait_for(watch.read(), 10)
        assert first.progress.achieved_value.value == "0"
        started = time.monotonic()
        await progress_pb2_grpc.ProgressServiceStub(channel_b).RecordTransaction(
            ppb.RecordTransactionRequest(
                transaction=ppb.Transaction(
                    id="X",
                    member_id="M",
                    occurred_time=_ts(now),
                    store_id="S",
                    type=ppb.TRANSACTION_TYPE_SALE,
                    lines=[ppb.TransactionLine(sku="A", quantity=D("1"), amount=D("42.50"))],
                )
            ),
            metadata=md,
        )
        second = await asyncio.wait_for(watch.read(), 10)
        assert second.progress.achieved_value.value == "42.50"
        # LISTEN/NOTIFY, not the 5-second safety poll, carried it across.
        assert time.monotonic() - started < 4
        watch.cancel()
    finally:
        await channel_b.close()
        await channel_a.close()
        await running.stop(grace=1)


async def test_threshold_crossings_delivered_to_both_replicas_award_once(
    pg_url: str, second_replica: str
) -> None:
    running, channel_a = await start_api(pg_url, FakeClock())
    channel_b = grpc.aio.insecure_channel(second_replica)
    try:
        now = datetime.now(UTC)
        _, _, secret = await admin.create_brand(
            db=running.app.db, code=f"A{random.randrange(10**9)}", time_zone="UTC", now=now
        )
        md = auth(secret)
        admin_stub = targets_pb2_grpc.TargetServiceStub(channel_a)
        await admin_stub.CreateTarget(
            tpb.CreateTargetRequest(
                target=tpb.Target(
                    code="SALES",
                    criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D("100"))],
                    period=tpb.Period(
                        kind=typ.PERIOD_KIND_MONTHLY,
                        start_date=now.date().replace(day=1).isoformat(),
                    ),
                    rules=[
                        tpb.RewardRule(
                            milestones=tpb.MilestonesRule(
                                milestones=[
                                    tpb.Milestone(
                                        attainment_percent=D("50"),
                                        incentive=typ.Incentive(points=5),
                                    ),
                                    tpb.Milestone(
                                        attainment_percent=D("100"),
                                        incentive=typ.Incentive(points=10),
                                    ),
                                ]
                            )
                        )
                    ],
                )
            ),
            metadata=md,
        )
        members = [f"M{i}" for i in range(20)]
        for member in members:
            await admin_stub.UpsertMember(
                tpb.UpsertMemberRequest(member=tpb.Member(external_id=member)), metadata=md
            )
        stubs = [progress_pb2_grpc.ProgressServiceStub(c) for c in (channel_a, channel_b)]

        async def deliver(member: str, part: int, stub: Any) -> None:
            await stub.RecordTransaction(
                ppb.RecordTransactionRequest(
                    transaction=ppb.Transaction(
                        id=f"{member}-{part}",
                        member_id=member,
                        occurred_time=_ts(now),
                        store_id="S",
                        type=ppb.TRANSACTION_TYPE_SALE,
                        lines=[ppb.TransactionLine(sku="A", quantity=D("1"), amount=D("60"))],
                    )
                ),
                metadata=md,
            )

        # Two sales of 60 per member, each delivered three times across both replicas.
        deliveries = [(m, part, stubs[k % 2]) for m in members for part in (1, 2) for k in range(3)]
        random.Random(3).shuffle(deliveries)
        await asyncio.gather(*(deliver(m, part, stub) for m, part, stub in deliveries))
        rewards = rewards_pb2_grpc.RewardServiceStub(channel_b)
        listed = await rewards.ListAwards(rpb.ListAwardsRequest(page_size=1000), metadata=md)
        per_member: dict[str, list[int]] = {}
        for award in listed.awards:
            per_member.setdefault(award.member_id, []).append(award.points)
        assert {m: sorted(p) for m, p in per_member.items()} == {m: [5, 10] for m in members}
        for member in members:
            balance = await rewards.GetBalance(rpb.GetBalanceRequest(member_id=member), metadata=md)
            assert [b.points for b in balance.balances] == [15]
    finally:
        await channel_b.close()
        await channel_a.close()
        await running.stop(grace=1)
