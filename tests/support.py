"""Helpers for tests: decoding rich gRPC errors and building requests."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import progress_pb2 as ppb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_client import AttainError


def auth(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def D(value: str) -> typ.Decimal:
    return typ.Decimal(value=value)


class Failure:
    """What a failed call said: code, message, ErrorInfo reason and field violations."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        decoded = AttainError(error)  # the Python client's decoding of the status details
        self.code = decoded.code()
        self.message = decoded.message
        self.reason = decoded.reason
        self.violations: dict[str, str] = {v.field: v.reason for v in decoded.violations}

    def __repr__(self) -> str:
        return f"Failure({self.code.name}, {self.message!r}, {self.violations})"


async def fails(call: Awaitable[Any]) -> Failure:
    """Awaits a call that must fail and returns what it said."""
    try:
        result = await call
    except grpc.aio.AioRpcError as error:
        return Failure(error)
    raise AssertionError(f"the call succeeded with {result!r}")


def monthly_target(code: str = "NOV-SALES", value: str = "10000.00", **kwargs: Any) -> tpb.Target:
    """SPEC example 1's target: monthly total transaction, FIXED 1,000 points at 100%."""
    target = tpb.Target(
        code=code,
        display_name="November sales",
        criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D(value))],
        period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date="2026-01-01"),
        rules=[tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=1000)))],
    )
    for key, item in kwargs.items():
        field = getattr(target, key)
        if hasattr(field, "CopyFrom"):
            field.CopyFrom(item)
        elif isinstance(item, list):
            del field[:]
            field.extend(item)
        else:
            setattr(target, key, item)
    return target


# ---------------------------------------------------------------- progress helpers

if TYPE_CHECKING:
    from conftest import Api, Brand

JAKARTA = ZoneInfo("Asia/Jakarta")
NOV_15 = datetime(2026, 11, 15, 12, tzinfo=JAKARTA)


def ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when.astimezone(UTC))
    return out


def line(
    amount: str, sku: str = "SKU-1", qty: str = "1", category: str = "general"
) -> ppb.TransactionLine:
    return ppb.TransactionLine(sku=sku, category=category, quantity=D(qty), amount=D(amount))


def sale(
    txn_id: str,
    amount: str,
    when: datetime = NOV_15,
    member: str = "M-001",
    store: str = "S1",
    lines: list[ppb.TransactionLine] | None = None,
) -> ppb.Transaction:
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=ts(when),
        store_id=store,
        type=ppb.TRANSACTION_TYPE_SALE,
        lines=lines or [line(amount)],
    )


def refund(
    txn_id: str,
    original: str,
    amount: str,
    when: datetime = NOV_15,
    member: str = "M-001",
    qty: str = "0",
    sku: str = "SKU-1",
) -> ppb.Transaction:
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=ts(when),
        store_id="S1",
        type=ppb.TRANSACTION_TYPE_RETURN,
        original_transaction_id=original,
        lines=[line(amount, sku=sku, qty=qty)],
    )


async def setup(api: Api, brand: Brand, target: tpb.Target, *members: str) -> None:
    await api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    for member in members or ("M-001",):
        await api.targets.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id=member)), metadata=brand.admin
        )


async def record(api: Api, brand: Brand, txn: ppb.Transaction) -> ppb.RecordTransactionResponse:
    return await api.progress.RecordTransaction(
        ppb.RecordTransactionRequest(transaction=txn), metadata=brand.admin
    )


async def progress(
    api: Api, brand: Brand, target: str = "NOV-SALES", member: str = "M-001", cycle: str = ""
) -> ppb.Progress:
    response = await api.progress.GetProgress(
        ppb.GetProgressRequest(member_id=member, target_code=target, cycle=cycle),
        metadata=brand.admin,
    )
    return response.progress


# ---------------------------------------------------------------- CLI helpers


def attain_cli(
    address: str,
    key: str | None,
    *args: str,
    config: str = "/nonexistent",
    env: dict[str, str | None] | None = None,
) -> Any:
    """Runs `attain --address ADDRESS --key KEY ARGS...` in-process (Typer's runner) with a
    wide terminal and no config file; returns the click Result (exit_code, stdout, stderr).
    `env` adds to (or, with None values, removes from) the command's environment."""
    from typer.testing import CliRunner

    from attain_cli.main import app

    runner = CliRunner()
    head = ["--address", address, "--config", config]
    if key is not None:
        head += ["--key", key]
    return runner.invoke(
        app, [*head, *args], env={"COLUMNS": "160", "ATTAIN_KEY": None, **(env or {})}
    )
