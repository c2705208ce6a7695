"""`AttainClient`: one channel to an Attain server, the bearer key on every call, safe retries,
and errors that carry the status, the reason and the field violations.

    async with AttainClient("127.0.0.1:50051", key) as attain:
        await attain.record_sale("T-1", member="M-001", sku="SKU-1", amount=Decimal("4000.00"))
        progress = await attain.get_progress("M-001", "NOV-SALES")

The typed stubs are `attain.targets`, `attain.progress` and `attain.rewards` for everything
the convenience methods do not cover.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from grpc.aio import ClientCallDetails
from grpc.aio._interceptor import UnaryUnaryCallResponse

from attain.v1 import progress_pb2 as ppb
from attain.v1 import progress_pb2_grpc, rewards_pb2_grpc, targets_pb2_grpc
from attain.v1 import rewards_pb2 as rpb
from attain_client.convert import DecimalLike, decimal, timestamp
from attain_client.errors import AttainError

# Calls that are safe to send again when the server could not be reached (UNAVAILABLE):
# reads, and writes that are idempotent by their content or by an idempotency key.
# CreateTarget, CreateApiKey, CreateProgram, the Update* calls with etags, ArchiveTarget,
# RevokeApiKey and the RecordTransactions stream are never retried by the client.
IDEMPOTENT: dict[str, tuple[str, ...]] = {
    "attain.v1.TargetService": (
        "GetBrand",
        "ListApiKeys",
        "GetProgram",
        "ListPrograms",
        "UpsertMember",
        "GetMember",
        "ListMembers",
        "GetTarget",
        "ListTargets",
        "SetTargetValues",
        "ListTargetValues",
        "ListCycles",
        "SetSftpSettings",
        "GetSftpSettings",
        "ListImports",
    ),
    "attain.v1.ProgressService": (
        "RecordTransaction",
        "GetProgress",
        "ListMemberProgress",
        "ListProgress",
        "WatchProgress",
    ),
    "attain.v1.RewardService": (
        "ListAwards",
        "GetBalance",
        "ListLedgerEntries",
        "AdjustPoints",
        "WatchAwards",
        "LoadVouchers",
        "ListVoucherPools",
        "ListBadges",
    ),
}


def service_config(max_attempts: int = 4) -> str:
    """The gRPC service config: retry UNAVAILABLE with backoff on the idempotent calls only."""
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [
                        {"service": service, "method": method}
                        for service, methods in IDEMPOTENT.items()
                        for method in methods
                    ],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def _with_key(details: ClientCallDetails, key: str, timeout: float | None) -> ClientCallDetails:
    metadata = grpc.aio.Metadata()
    for name, value in details.metadata or ():
        metadata.add(name, value)
    metadata.add("authorization", f"Bearer {key}")
    return ClientCallDetails(
        details.method,
        details.timeout if details.timeout is not None else timeout,
        metadata,
        details.credentials,
        details.wait_for_ready,
    )


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, key: str, timeout: float | None) -> None:
        self._key, self._timeout = key, timeout

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: ClientCallDetails, request: Any
    ) -> Any:
        call = await continuation(_with_key(details, self._key, self._timeout), request)
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise _convert(error) from None


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, key: str) -> None:
        self._key = key

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: ClientCallDetails, requests: Any
    ) -> Any:
        call = await continuation(_with_key(details, self._key, None), requests)
        try:
            response = await call
        except grpc.aio.AioRpcError as error:
            raise _convert(error) from None
        # Unlike unary calls, grpc.aio does not wrap a plain response of a stream-unary
        # interceptor in a finished call object: do it with its own (private) class.
        return UnaryUnaryCallResponse(response)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, key: str) -> None:
        self._key = key

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: ClientCallDetails, request: Any
    ) -> Any:
        call = await continuation(_with_key(details, self._key, None), request)

        async def responses() -> AsyncIterator[Any]:
            try:
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as error:
                raise _convert(error) from None

        return responses()


def _convert(error: grpc.aio.AioRpcError) -> AttainError:
    return error if isinstance(error, AttainError) else AttainError(error)


Page = TypeVar("Page")
T = TypeVar("T")


class AttainClient:
    """An async client of one Attain server for one key (one brand and role).

    `timeout` is the default deadline of unary calls in seconds (streams have none). Pass
    `credentials` (e.g. `grpc.ssl_channel_credentials()`) for TLS; the default is plaintext,
    for loopback and private networks.
    """

    def __init__(
        self,
        address: str,
        key: str,
        *,
        timeout: float | None = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        max_attempts: int = 4,
    ) -> None:
        if not key:
            raise ValueError("an API key is required")
        self.address = address
        interceptors = [_UnaryUnary(key, timeout), _StreamUnary(key), _UnaryStream(key)]
        channel_options = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config(max_attempts)),
            *options,
        ]
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(
                address, options=channel_options, interceptors=interceptors
            )
        else:
            self.channel = grpc.aio.secure_channel(
                address, credentials, options=channel_options, interceptors=interceptors
            )
        self.targets = targets_pb2_grpc.TargetServiceStub(self.channel)
        self.progress = progress_pb2_grpc.ProgressServiceStub(self.channel)
        self.rewards = rewards_pb2_grpc.RewardServiceStub(self.channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    # ------------------------------------------------------------ transactions

    async def record_transaction(self, txn: ppb.Transaction) -> ppb.RecordTransactionResponse:
        """Records one transaction (idempotent on its id: a repeat is a DUPLICATE)."""
        return await self.progress.RecordTransaction(ppb.RecordTransactionRequest(transaction=txn))

    async def record_sale(
        self,
        txn_id: str,
        *,
        member: str,
        sku: str = "",
        amount: DecimalLike | None = None,
        lines: Sequence[ppb.TransactionLine] = (),
        occurred_at: datetime | None = None,
        store: str = "",
    ) -> ppb.RecordTransactionResponse:
        """Records a sale: one line of `amount` for `sku`, or the given `lines`; `occurred_at`
        defaults to now."""
        return await self.record_transaction(
            sale(
                txn_id,
                member=member,
                sku=sku,
                amount=amount,
                lines=lines,
                occurred_at=occurred_at,
                store=store,
            )
        )

    async def record_transactions(
        self,
        transactions: AsyncIterator[ppb.Transaction] | Sequence[ppb.Transaction],
        *,
        batch_size: int = 500,
    ) -> ppb.RecordTransactionsResponse:
        """Streams many transactions in batches; one summary with every refusal at the end."""
        source = _each(transactions) if isinstance(transactions, Sequence) else transactions

        async def batches() -> AsyncIterator[ppb.RecordTransactionsRequest]:
            batch: list[ppb.Transaction] = []
            async for txn in source:
                batch.append(txn)
                if len(batch) >= batch_size:
                    yield ppb.RecordTransactionsRequest(transactions=batch)
                    batch = []
            if batch:
                yield ppb.RecordTransactionsRequest(transactions=batch)

        return await self.progress.RecordTransactions(batches())

    # ------------------------------------------------------------ progress

    async def get_progress(self, member: str, target: str, cycle: str = "") -> ppb.Progress:
        """One member's progress on one target; `cycle` defaults to the current one."""
        response = await self.progress.GetProgress(
            ppb.GetProgressRequest(member_id=member, target_code=target, cycle=cycle)
        )
        return response.progress

    async def member_progress(self, member: str) -> list[ppb.Progress]:
        """All of a member's targets in their current cycles (every page)."""
        request = ppb.ListMemberProgressRequest(member_id=member, page_size=100)
        return [p async for p in pages(self.progress.ListMemberProgress, request, "progress")]

    async def leaderboard(
        self, target: str, cycle: str = "", *, page_size: int = 100
    ) -> AsyncGenerator[ppb.RankedProgress, None]:
        """A target's cycle ranked by attainment, page by page."""
        request = ppb.ListProgressRequest(target_code=target, cycle=cycle, page_size=page_size)
        async with aclosing(pages(self.progress.ListProgress, request, "entries")) as entries:
            async for entry in entries:
                yield entry

    async def watch_progress(
        self, member: str, target: str = ""
    ) -> AsyncGenerator[ppb.Progress, None]:
        """The member's progress now, then every change, until the caller stops iterating."""
        stream = self.progress.WatchProgress(
            ppb.WatchProgressRequest(member_id=member, target_code=target)
        )
        async for response in stream:
            yield response.progress

    # ------------------------------------------------------------ rewards

    async def balance(self, member: str, program: str = "") -> rpb.GetBalanceResponse:
        return await self.rewards.GetBalance(
            rpb.GetBalanceRequest(member_id=member, program=program)
        )

    async def adjust_points(
        self,
        member: str,
        points: int,
        reason: str,
        *,
        program: str = "",
        request_id: str | None = None,
    ) -> rpb.AdjustPointsResponse:
        """A correcting ledger entry. `request_id` is the idempotency key (a new one by
        default, so a retried call is still written once)."""
        return await self.rewards.AdjustPoints(
            rpb.AdjustPointsRequest(
                request_id=request_id or str(uuid.uuid4()),
                member_id=member,
                program=program,
                points=points,
                reason=reason,
            )
        )

    async def watch_awards(
        self, cursor: str = "", member: str = ""
    ) -> AsyncGenerator[rpb.Award, None]:
        """The brand's awards after `cursor`, in order, then new ones live. Keep the last
        award's `cursor` and pass it again to resume after a disconnect."""
        request = rpb.WatchAwardsRequest(cursor=cursor, member_id=member)
        async for response in self.rewards.WatchAwards(request):
            yield response.award


async def pages(
    call: Callable[[Any], Awaitable[Page]], request: Any, items: str
) -> AsyncGenerator[Any, None]:
    """Every item of a paginated list call: `pages(attain.targets.ListMembers,
    ListMembersRequest(page_size=100), "members")`."""
    while True:
        response = await call(request)
        for item in getattr(response, items):
            yield item
        token = response.next_page_token  # type: ignore[attr-defined]
        if not token:
            return
        request.page_token = token


async def _each(items: Sequence[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


# ---------------------------------------------------------------- message builders


def line(
    amount: DecimalLike, *, sku: str = "", quantity: DecimalLike = 1, category: str = ""
) -> ppb.TransactionLine:
    return ppb.TransactionLine(
        sku=sku, category=category, quantity=decimal(quantity), amount=decimal(amount)
    )


def sale(
    txn_id: str,
    *,
    member: str,
    sku: str = "",
    amount: DecimalLike | None = None,
    lines: Sequence[ppb.TransactionLine] = (),
    occurred_at: datetime | None = None,
    store: str = "",
) -> ppb.Transaction:
    """A SALE: one line of `amount` for `sku`, or the given `lines` (one of the two)."""
    if (amount is None) == (not lines):
        raise ValueError("give either amount or lines")
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=timestamp(occurred_at or datetime.now(UTC)),
        store_id=store,
        type=ppb.TRANSACTION_TYPE_SALE,
        lines=list(lines) if lines else [line(amount, sku=sku)],  # type: ignore[arg-type]
    )


def refund(
    txn_id: str,
    *,
    member: str,
    original: str,
    lines: Sequence[ppb.TransactionLine],
    occurred_at: datetime | None = None,
    store: str = "",
) -> ppb.Transaction:
    """A RETURN of (part of) the sale `original`; lines give the quantities and amounts back."""
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=timestamp(occurred_at or datetime.now(UTC)),
        store_id=store,
        type=ppb.TRANSACTION_TYPE_RETURN,
        original_transaction_id=original,
        lines=list(lines),
    )
