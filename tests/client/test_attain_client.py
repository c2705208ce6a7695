"""The Python client against a real server: every service, errors, exact decimals, retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncssh
import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attain.v1 import progress_pb2 as ppb
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_client import (
    AttainClient,
    AttainError,
    FieldViolation,
    decimal,
    json_default,
    line,
    pages,
    password_credential,
    plain,
    private_key_credential,
    refund,
    sale,
    timestamp,
    to_datetime,
    to_decimal,
)
from conftest import Api, Brand, FakeClock
from support import NOV_15, monthly_target


@pytest.fixture
async def attain(api: Api, brand: Brand) -> AsyncIterator[AttainClient]:
    async with AttainClient(api.address, brand.admin_key) as client:
        yield client


async def member(attain: AttainClient, external_id: str = "M-001", level: str = "") -> None:
    await attain.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id=external_id, level=level))
    )


async def test_five_lines_record_a_sale_and_read_exact_progress(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    async with AttainClient(api.address, brand.admin_key) as admin:
        await admin.targets.CreateTarget(tpb.CreateTargetRequest(target=monthly_target()))
        await member(admin)

    # What a microservice writes:
    async with AttainClient(api.address, brand.admin_key) as attain:
        await attain.record_sale(
            "T-1", member="M-001", sku="SKU-1", amount=Decimal("4000.00"), occurred_at=NOV_15
        )
        await attain.record_sale(
            "T-2", member="M-001", sku="SKU-1", amount="5500.00", occurred_at=NOV_15
        )
        progress = await attain.get_progress("M-001", "NOV-SALES")

    view = plain(progress)
    assert view["achieved_value"] == Decimal("9500.00")
    assert view["remaining_value"] == Decimal("500.00")
    assert view["attainment_percent"] == Decimal("95")
    assert view["attainment_display"] == "95.00"
    assert view["colour"] == "COLOUR_ORANGE"
    assert view["cycle"] == "2026-11"
    start = view["cycle_start_time"]
    assert isinstance(start, datetime) and start.tzinfo is not None
    assert start == datetime(2026, 10, 31, 17, tzinfo=UTC)  # 1 Nov 00:00 in Jakarta
    # Nothing in the plain view is a float, however deep.
    text = json.dumps(view, default=json_default)
    assert '"achieved_value": "9500.00"' in text
    assert not any(isinstance(v, float) for v in _leaves(view))


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


async def test_errors_carry_status_reason_and_field_violations(
    api: Api, brand: Brand, attain: AttainClient, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await attain.targets.CreateTarget(tpb.CreateTargetRequest(target=monthly_target()))
    await member(attain)

    with pytest.raises(AttainError) as caught:
        await attain.record_sale(
            "X-1", member="NOBODY", sku="SKU-1", amount="1", occurred_at=NOV_15
        )
    error = caught.value
    assert isinstance(error, grpc.aio.AioRpcError)  # still catchable as a gRPC error
    assert error.reason == "UNKNOWN_MEMBER"
    assert FieldViolation("transaction.member_id", "unknown member 'NOBODY'") in error.violations
    assert "transaction.member_id: unknown member 'NOBODY'" in str(error)

    bad = sale("X-2", member="M-001", sku="SKU-1", amount="-5", occurred_at=NOV_15)
    with pytest.raises(AttainError) as caught:
        await attain.record_transaction(bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in caught.value.violations] == ["transaction.lines[0].amount"]

    with pytest.raises(AttainError) as caught:
        await attain.targets.CreateTarget(tpb.CreateTargetRequest(target=monthly_target()))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS

    async with AttainClient(api.address, "not-a-key") as stranger:
        with pytest.raises(AttainError) as caught:
            await stranger.get_progress("M-001", "NOV-SALES")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Streams convert their errors too.
        with pytest.raises(AttainError) as caught:
            await stranger.record_transactions([sale("X-3", member="M-001", sku="A", amount="1")])
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(AttainError) as caught:
            await anext(stranger.watch_progress("M-001"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_every_service_through_the_client(
    api: Api, brand: Brand, attain: AttainClient, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    # TargetService
    await attain.targets.CreateTarget(tpb.CreateTargetRequest(target=monthly_target()))
    for external_id in ("M-001", "M-002", "M-003"):
        await member(attain, external_id)
    listed = [
        m.external_id
        async for m in pages(
            attain.targets.ListMembers, tpb.ListMembersRequest(page_size=2), "members"
        )
    ]
    assert listed == ["M-001", "M-002", "M-003"]
    brand_info = await attain.targets.GetBrand(tpb.GetBrandRequest())
    assert brand_info.brand.code == brand.code

    # ProgressService: a sale, a stream with one bad transaction, a return.
    await attain.record_sale(
        "S-1",
        member="M-001",
        lines=[line(Decimal("6000.00"), sku="A", quantity=2), line("4200.00", sku="B")],
        occurred_at=NOV_15,
        store="S1",
    )
    summary = await attain.record_transactions(
        [
            sale("S-2", member="M-002", sku="SKU-1", amount="9000", occurred_at=NOV_15),
            sale("S-3", member="NOBODY", sku="SKU-1", amount="1", occurred_at=NOV_15),
            sale("S-4", member="M-003", sku="SKU-1", amount="100.10", occurred_at=NOV_15),
        ],
        batch_size=2,
    )
    assert (summary.accepted, summary.duplicate, summary.refused) == (2, 0, 1)
    assert summary.refusals[0].reason == "UNKNOWN_MEMBER" and summary.refusals[0].index == 1

    board = [e async for e in attain.leaderboard("NOV-SALES", page_size=2)]
    assert [(e.rank, e.progress.member_id) for e in board] == [
        (1, "M-001"),
        (2, "M-002"),
        (3, "M-003"),
    ]
    card = await attain.member_progress("M-001")
    assert [(p.target_code, p.attainment_display) for p in card] == [("NOV-SALES", "102.00")]

    await attain.record_transaction(
        refund(
            "R-1",
            member="M-001",
            original="S-1",
            lines=[line("300.00", sku="B", quantity=0)],
            occurred_at=NOV_15,
        )
    )
    after = await attain.get_progress("M-001", "NOV-SALES")
    assert to_decimal(after.achieved_value) == Decimal("9900.00")

    # RewardService: the FIXED award of 1,000 points stays (KEEP), balances, adjustments.
    awards = [
        a
        async for a in pages(
            attain.rewards.ListAwards, rpb.ListAwardsRequest(member_id="M-001"), "awards"
        )
    ]
    assert [(a.points, a.program) for a in awards] == [(1000, "POINTS")]
    balance = await attain.balance("M-001")
    assert [(b.program, b.points) for b in balance.balances] == [("POINTS", 1000)]
    first = await attain.adjust_points("M-001", -250, "goodwill correction", request_id="adj-1")
    again = await attain.adjust_points("M-001", -250, "goodwill correction", request_id="adj-1")
    assert first.balance == again.balance == 750
    assert first.entry.id == again.entry.id
    loaded = await attain.rewards.LoadVouchers(rpb.LoadVouchersRequest(pool="P", codes=["A", "B"]))
    assert loaded.loaded == 2


async def test_watch_progress_then_watch_awards_resume(
    api: Api, brand: Brand, attain: AttainClient, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await attain.targets.CreateTarget(tpb.CreateTargetRequest(target=monthly_target()))
    await member(attain, "M-001")
    await member(attain, "M-002")

    seen: list[str] = []
    watch = attain.watch_progress("M-001", "NOV-SALES")
    first = await anext(watch)
    seen.append(first.attainment_display)
    await attain.record_sale("S-1", member="M-001", sku="SKU-1", amount="10500", occurred_at=NOV_15)
    seen.append((await asyncio.wait_for(anext(watch), 10)).attainment_display)
    await watch.aclose()
    assert seen == ["0.00", "105.00"]

    await attain.record_sale("S-2", member="M-002", sku="SKU-1", amount="12000", occurred_at=NOV_15)
    stream = attain.watch_awards()
    one = await asyncio.wait_for(anext(stream), 10)
    await stream.aclose()
    resumed = attain.watch_awards(cursor=one.cursor)
    two = await asyncio.wait_for(anext(resumed), 10)
    await resumed.aclose()
    assert (one.member_id, two.member_id) == ("M-001", "M-002")


async def test_a_member_key_reads_only_its_own_member(
    api: Api, brand: Brand, attain: AttainClient, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await attain.targets.CreateTarget(tpb.CreateTargetRequest(target=monthly_target()))
    await member(attain, "M-001")
    await member(attain, "M-002")
    created = await attain.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="M-001", label="app")
    )
    async with AttainClient(api.address, created.secret) as mine:
        own = await mine.get_progress("M-001", "NOV-SALES")
        assert own.member_id == "M-001"
        with pytest.raises(AttainError) as caught:
            await mine.get_progress("M-002", "NOV-SALES")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


# ---------------------------------------------------------------- conversions


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None)
    | st.integers(min_value=-(10**30), max_value=10**30)
)
def test_decimals_round_trip_exactly(value: Decimal | int) -> None:
    message = decimal(value)
    assert "e" not in message.value.lower()
    assert to_decimal(message) == Decimal(value)
    assert to_decimal(typ.Decimal.FromString(message.SerializeToString())) == Decimal(value)


def test_floats_and_naive_times_are_refused() -> None:
    with pytest.raises(TypeError, match="floats are inexact"):
        decimal(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a decimal"):
        decimal("12,50")
    with pytest.raises(ValueError, match="finite"):
        decimal("NaN")
    with pytest.raises(ValueError, match="naive"):
        timestamp(datetime(2026, 11, 15, 12))  # noqa: DTZ001
    with pytest.raises(ValueError, match="either amount or lines"):
        sale("T", member="M")
    moment = datetime(2026, 11, 15, 12, 0, 0, 123456, tzinfo=UTC)
    assert to_datetime(timestamp(moment)) == moment
    assert to_decimal(typ.Decimal()) is None


# ---------------------------------------------------------------- retries


class Flaky:
    """A real gRPC server that answers UNAVAILABLE to the first attempts of every call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[str, int] = {}

    def handler(self, method: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        async def behave(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            self.attempts[method] = self.attempts.get(method, 0) + 1
            metadata = dict(context.invocation_metadata() or ())
            assert metadata.get("authorization") == "Bearer k-1"
            if self.attempts[method] <= self.failures:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
            return b""

        return grpc.unary_unary_rpc_method_handler(behave)


class FlakyHandler(grpc.GenericRpcHandler):
    def __init__(self, flaky: Flaky) -> None:
        self.flaky = flaky

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes]:
        return self.flaky.handler(details.method)


async def test_only_idempotent_calls_are_retried_on_unavailable() -> None:
    flaky = Flaky(failures=2)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([FlakyHandler(flaky)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with AttainClient(f"127.0.0.1:{port}", "k-1") as attain:
            await attain.targets.GetBrand(tpb.GetBrandRequest())
            await attain.record_sale("T-1", member="M", sku="A", amount="1")
            with pytest.raises(AttainError) as caught:
                await attain.targets.CreateTarget(tpb.CreateTargetRequest())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert flaky.attempts == {
            "/attain.v1.TargetService/GetBrand": 3,
            "/attain.v1.ProgressService/RecordTransaction": 3,
            "/attain.v1.TargetService/CreateTarget": 1,
        }
    finally:
        await server.stop(None)


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError, match="key"):
        AttainClient("127.0.0.1:1", "")


def test_record_outcome_names_are_plain() -> None:
    response = ppb.RecordTransactionResponse(outcome=ppb.RECORD_OUTCOME_DUPLICATE)
    assert plain(response) == {
        "outcome": "RECORD_OUTCOME_DUPLICATE",
        "progress": [],
        "awards": [],
        "not_counted": [],
    }
    award = plain(rpb.Award(id="A1", points=0))
    assert award["points"] == 0 and award["voucher_code"] == ""
    assert "milestone_percent" not in award and "create_time" not in award


async def test_sftp_credentials_come_from_the_admins_machine(
    attain: AttainClient, tmp_path: Path
) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id").write_bytes(key.export_private_key("openssh", passphrase="pp"))
    (tmp_path / "id.pub").write_bytes(key.export_public_key())
    (tmp_path / "big").write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + b"A" * 9000)
    settings = tpb.SftpSettings(
        host="sftp.acme.example",
        username="attain",
        host_key=key.export_public_key().decode().strip(),
        transactions_folder="/in",
        processed_folder="/done",
        failed_folder="/failed",
        credential=private_key_credential(tmp_path / "id", passphrase="pp"),
    )
    saved = await attain.targets.SetSftpSettings(tpb.SetSftpSettingsRequest(settings=settings))
    assert saved.settings.credential_info.public_key_fingerprint == key.get_fingerprint()
    settings.credential.CopyFrom(password_credential("hunter2"))
    saved = await attain.targets.SetSftpSettings(tpb.SetSftpSettingsRequest(settings=settings))
    assert saved.settings.credential_info.kind == tpb.SFTP_CREDENTIAL_KIND_PASSWORD
    for name, said in (("id.pub", "holds no private key"), ("big", "larger than")):
        with pytest.raises(ValueError, match=said):
            private_key_credential(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        private_key_credential(tmp_path / "missing")
    with pytest.raises(ValueError, match="empty"):
        password_credential("")
