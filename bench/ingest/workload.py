"""What the benchmark sends and what it needs first: a brand, keys, a target, members.

Requests are serialized here, before any timing, and sent as raw bytes: the client does the
same work for Attain and for the echo baseline, and the echo payload is a real serialized
``RecordTransactionRequest`` (its ids have a fixed width, so every request has one size).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from attain.v1 import progress_pb2 as ppb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import targets_pb2_grpc
from attain.v1 import types_pb2 as typ
from attain_server.store.tables import CycleEventRow, MemberRow

from .procs import attain_command

BRAND = "BENCH"
ZONE = "UTC"
TARGET = "BENCH-MONTHLY"
RECORD_TRANSACTION = "/attain.v1.ProgressService/RecordTransaction"
RECORD_TRANSACTIONS = "/attain.v1.ProgressService/RecordTransactions"
GET_PROGRESS = "/attain.v1.ProgressService/GetProgress"
SALE_AMOUNT = Decimal("125.50")
MEMBER_INSERT_CHUNK = 10_000

Metadata = tuple[tuple[str, str], ...]


def bearer(secret: str) -> Metadata:
    return (("authorization", f"Bearer {secret}"),)


def member_id(index: int) -> str:
    return f"M{index:06d}"


TAG_LENGTH = 4


def transaction_id(tag: str, index: int) -> str:
    """Distinct, fixed-width ids: ``tag`` (4 characters) names the run, ``index`` the call."""
    if len(tag) != TAG_LENGTH:
        raise ValueError(f"run tags have {TAG_LENGTH} characters: {tag!r}")
    return f"{tag}-{index:09d}"


def timestamp(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when.astimezone(UTC))
    return out


def sale(txn_id: str, member: str, when: Timestamp) -> ppb.Transaction:
    """A SALE with one line, as a point-of-sale system would send it."""
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=when,
        store_id="STORE-0001",
        type=ppb.TRANSACTION_TYPE_SALE,
        lines=[
            ppb.TransactionLine(
                sku="SKU-000123",
                category="beverages",
                quantity=typ.Decimal(value="1"),
                amount=typ.Decimal(value=format(SALE_AMOUNT, "f")),
            )
        ],
    )


def record_requests(tag: str, count: int, member_of: Callable[[int], str]) -> list[bytes]:
    """``count`` serialized RecordTransactionRequests with distinct ids, occurring now."""
    when = timestamp(datetime.now(UTC))
    return [
        ppb.RecordTransactionRequest(
            transaction=sale(transaction_id(tag, i), member_of(i), when)
        ).SerializeToString()
        for i in range(count)
    ]


def stream_messages(
    tag: str, messages: int, per_message: int, member_of: Callable[[int], str]
) -> list[bytes]:
    """Serialized RecordTransactionsRequests of ``per_message`` sales each, occurring now."""
    when = timestamp(datetime.now(UTC))
    out = []
    for m in range(messages):
        first = m * per_message
        out.append(
            ppb.RecordTransactionsRequest(
                transactions=[
                    sale(transaction_id(tag, i), member_of(i), when)
                    for i in range(first, first + per_message)
                ]
            ).SerializeToString()
        )
    return out


def progress_requests(
    count: int, member_of: Callable[[int], str], pool: int, seed: int
) -> list[bytes]:
    """GetProgress of the target's current cycle for random members ``member_of(0..pool-1)``."""
    rng = random.Random(seed)
    return [
        ppb.GetProgressRequest(
            member_id=member_of(rng.randrange(pool)), target_code=TARGET
        ).SerializeToString()
        for _ in range(count)
    ]


def check_recorded(replies: Sequence[bytes]) -> None:
    """Every unary reply must say ACCEPTED with the one progress row the sale changed."""
    for raw in replies:
        reply = ppb.RecordTransactionResponse.FromString(raw)
        if reply.outcome != ppb.RECORD_OUTCOME_ACCEPTED or len(reply.progress) != 1:
            raise AssertionError(f"unexpected RecordTransaction reply: {reply}")


def check_stream_summary(raw: bytes, expected: int) -> None:
    summary = ppb.RecordTransactionsResponse.FromString(raw)
    if summary.accepted != expected or summary.refused or summary.duplicate:
        raise AssertionError(
            f"stream summary: accepted {summary.accepted} of {expected}, "
            f"refused {summary.refused} (first: {summary.refusals[:1]}), "
            f"duplicate {summary.duplicate}"
        )


def check_progress(replies: Sequence[bytes]) -> None:
    """Every reply must show the target's row of a member who has sales (version > 0)."""
    for raw in replies:
        progress = ppb.GetProgressResponse.FromString(raw).progress
        if progress.target_code != TARGET or progress.version < 1:
            raise AssertionError(f"unexpected GetProgress reply: {progress}")


# ---------------------------------------------------------------- setup


async def create_brand(database_url: str) -> str:
    """`attain-server brands create` (migrates first); returns the first admin key."""
    proc = await asyncio.create_subprocess_exec(
        *attain_command(),
        "brands",
        "create",
        BRAND,
        "--timezone",
        ZONE,
        "--name",
        "Benchmark brand",
        "--database-url",
        database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"brands create failed ({proc.returncode}): {err.decode()}")
    return out.decode().strip().splitlines()[-1]


async def load_members(database_url: str, count: int) -> None:
    """Inserts members as UpsertMember writes them, with Core executemany in one transaction."""
    now = datetime.now(UTC)
    table: Any = MemberRow.__table__  # type: ignore[attr-defined]
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for first in range(0, count, MEMBER_INSERT_CHUNK):
                await conn.execute(
                    insert(table),
                    [
                        {
                            "brand_code": BRAND,
                            "external_id": member_id(i),
                            "display_name": f"Member {i}",
                            "level": "",
                            "groups": ["RETAIL"],
                            "create_time": now,
                            "update_time": now,
                        }
                        for i in range(first, min(first + MEMBER_INSERT_CHUNK, count))
                    ],
                )
    finally:
        await engine.dispose()


async def wait_cycle_open(database_url: str, timeout_s: float) -> float:
    """Waits until the worker's cycle clock has opened the target's current cycle.

    ``attain-server serve`` runs the worker: its first tick opens a progress row at zero for
    every member of the audience, then records an OPEN cycle event. Returns the seconds
    waited.
    """
    table: Any = CycleEventRow.__table__  # type: ignore[attr-defined]
    query = (
        select(func.count())
        .select_from(table)
        .where(
            table.c.brand_code == BRAND,
            table.c.target_code == TARGET,
            table.c.state == "OPEN",
        )
    )
    engine = create_async_engine(database_url)
    began = time.perf_counter()
    try:
        while True:
            async with engine.connect() as conn:
                if (await conn.execute(query)).scalar_one():
                    return time.perf_counter() - began
            if time.perf_counter() - began > timeout_s:
                raise TimeoutError(f"the worker did not open the cycle in {timeout_s:.0f} s")
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()


def first_of_month() -> date:
    """The first day of the current month in the brand's zone (UTC)."""
    return datetime.now(UTC).date().replace(day=1)


async def configure(channel: grpc.aio.Channel, admin_key: str) -> str:
    """Creates the monthly TRANSACTION_AMOUNT target and an ingest key; returns the key."""
    stub = targets_pb2_grpc.TargetServiceStub(channel)
    admin = bearer(admin_key)
    await stub.CreateTarget(
        tpb.CreateTargetRequest(
            target=tpb.Target(
                code=TARGET,
                display_name="Monthly sales",
                criteria=[
                    tpb.Criterion(
                        kpi=typ.KPI_TRANSACTION_AMOUNT,
                        target_value=typ.Decimal(value="10000.00"),
                    )
                ],
                period=tpb.Period(
                    kind=typ.PERIOD_KIND_MONTHLY, start_date=first_of_month().isoformat()
                ),
                rules=[tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=1000)))],
            )
        ),
        metadata=admin,
        timeout=30,
    )
    key = await stub.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_INGEST, label="bench ingest"),
        metadata=admin,
        timeout=30,
    )
    return key.secret
