"""ProgressService: transactions in, progress out, and the live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeAlias

import grpc
import structlog

from attain.v1 import progress_pb2 as pb
from attain.v1 import progress_pb2_grpc
from attain_server.app import App
from attain_server.application import live, standings
from attain_server.application.ingest import Outcome, OutcomeStatus
from attain_server.application.paging import read_page
from attain_server.domain.errors import AttainError, FieldViolation, InvalidArgument
from attain_server.domain.model import Role
from attain_server.domain.transactions import Transaction
from attain_server.domain.validation import require_label

from . import mapping as m
from . import progress_mapping as pm
from . import reward_mapping as rm
from .gate import principal

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]

log = structlog.get_logger("attain.progress")

MAX_STREAM_BATCH = 1000
MAX_REASONS = 10  # bad fields a refusal's message names


def _require(value: str, field: str) -> None:
    require_label(field, value)


class ProgressServicer(progress_pb2_grpc.ProgressServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    def _views(self, outcome: Outcome) -> list[pb.Progress]:
        """The touched rows as the write committed them: no second read."""
        now = self.app.now()
        return [
            pm.progress_to_proto(
                standings.view_of(x.state, x.target, x.window, x.zone, now, now, x.awards)
            )
            for x in outcome.snapshots
        ]

    async def RecordTransaction(
        self, request: pb.RecordTransactionRequest, context: Ctx
    ) -> pb.RecordTransactionResponse:
        p = m.Parser()
        txn = pm.transaction_from_proto(p, request.transaction)
        if p.violations:
            raise pm.request_error(InvalidArgument(p.violations.items))
        outcome = await self.app.batcher.record(principal().brand, txn)
        if outcome.error is not None:
            raise pm.request_error(outcome.error)
        if outcome.status is OutcomeStatus.DUPLICATE:
            return pb.RecordTransactionResponse(outcome=pb.RECORD_OUTCOME_DUPLICATE)
        return pb.RecordTransactionResponse(
            outcome=pb.RECORD_OUTCOME_ACCEPTED,
            progress=self._views(outcome),
            awards=[rm.award_to_proto(a) for a in outcome.awards],
            not_counted=[
                pb.UncountedCycle(target_code=target, cycle=cycle, reason="CYCLE_CLOSED")
                for target, cycle in outcome.closed
            ],
        )

    async def RecordTransactions(
        self, request_iterator: AsyncIterator[pb.RecordTransactionsRequest], context: Ctx
    ) -> pb.RecordTransactionsResponse:
        """Each transaction is its own unit: a bad one is refused alone (in `refusals`) and
        the stream goes on. Only a message that is itself invalid ends the stream."""
        brand = principal().brand
        summary = pb.RecordTransactionsResponse()
        index = 0
        async for message in request_iterator:
            if len(message.transactions) > MAX_STREAM_BATCH:
                raise InvalidArgument.one("transactions", _too_many(summary))
            parsed, positions = _parse_message(summary, message, index)
            index += len(message.transactions)
            outcomes = await self._record_message(brand, parsed)
            accepted = duplicate = 0
            for position, outcome in zip(positions, outcomes, strict=True):
                status = outcome.status
                if status is OutcomeStatus.ACCEPTED:
                    accepted += 1
                elif status is OutcomeStatus.DUPLICATE:
                    duplicate += 1
                else:
                    _refuse(summary, position, outcome)
            # Counted here, then added once: a message field costs more than an int.
            summary.accepted += accepted
            summary.duplicate += duplicate
        summary.refusals.sort(key=lambda r: r.index)
        return summary

    async def _record_message(self, brand: str, parsed: list[Transaction]) -> list[Outcome]:
        """A message's transactions in one unit of work; should that unit fail as a whole, each
        in a unit of its own, so that only the one at fault is refused, with its own reason."""
        record = self.app.recorder.record
        try:
            return await record(brand, parsed, snapshots=False)
        except Exception as exc:
            # The type only: the error's text may quote the message's values.
            log.warning("stream message failed; recording it one by one", error=type(exc).__name__)
        outcomes: list[Outcome] = []
        for txn in parsed:
            try:
                outcomes += await record(brand, [txn], snapshots=False)
            except AttainError as error:
                outcomes.append(Outcome(txn.id, OutcomeStatus.REFUSED, error=error))
            except Exception:
                log.exception("recording a streamed transaction failed")
                outcomes.append(Outcome(txn.id, OutcomeStatus.REFUSED, error=_internal()))
        return outcomes

    async def GetProgress(
        self, request: pb.GetProgressRequest, context: Ctx
    ) -> pb.GetProgressResponse:
        _require(request.member_id, "member_id")
        _require(request.target_code, "target_code")
        who = principal()
        who.require_member_access(request.member_id)
        view = await standings.get_progress(
            db=self.app.db,
            brand=who.brand,
            member_id=request.member_id,
            target_code=request.target_code,
            cycle=request.cycle,
            now=self.app.now(),
            member_key=who.role is Role.MEMBER,
        )
        return pb.GetProgressResponse(progress=pm.progress_to_proto(view))

    async def ListMemberProgress(
        self, request: pb.ListMemberProgressRequest, context: Ctx
    ) -> pb.ListMemberProgressResponse:
        _require(request.member_id, "member_id")
        who = principal()
        who.require_member_access(request.member_id)
        page = read_page(request.page_size, request.page_token, member=request.member_id)
        views, token = await standings.list_member_progress(
            db=self.app.db,
            brand=who.brand,
            member_id=request.member_id,
            now=self.app.now(),
            page=page,
        )
        return pb.ListMemberProgressResponse(
            progress=[pm.progress_to_proto(v) for v in views], next_page_token=token
        )

    async def ListProgress(
        self, request: pb.ListProgressRequest, context: Ctx
    ) -> pb.ListProgressResponse:
        _require(request.target_code, "target_code")
        page = read_page(
            request.page_size, request.page_token, target=request.target_code, cycle=request.cycle
        )
        ranked, token, total = await standings.list_progress(
            db=self.app.db,
            brand=principal().brand,
            target_code=request.target_code,
            cycle=request.cycle,
            now=self.app.now(),
            page=page,
        )
        return pb.ListProgressResponse(
            entries=[
                pb.RankedProgress(rank=r.rank, progress=pm.progress_to_proto(r.view))
                for r in ranked
            ],
            next_page_token=token,
            total_size=total,
        )

    async def WatchProgress(
        self, request: pb.WatchProgressRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchProgressResponse]:
        _require(request.member_id, "member_id")
        require_label("target_code", request.target_code, required=False)
        who = principal()
        who.require_member_access(request.member_id)
        signal = self.app.hub.subscribe(who.brand, request.member_id)
        sent: dict[tuple[str, str], pb.Progress] = {}
        try:
            zone = await standings.zone_of(db=self.app.db, brand=who.brand)
            while True:
                signal.clear()
                views = await self._card(who.brand, request.member_id, request.target_code)
                now = self.app.now()
                for view in views:
                    message = pm.progress_to_proto(view)
                    # Whatever moved (a sale, the target, its values, the state or days left
                    # with time) shows in the message itself.
                    key = (view.target_code, view.window.name)
                    if sent.get(key) != message:
                        sent[key] = message
                        yield pb.WatchProgressResponse(progress=message)
                # Nothing is read again until a change is signalled or what was sent changes
                # by time alone (a cycle's state, the days left at local midnight).
                changes = [live.next_change(v.window, zone, now) for v in views]
                wake_at = min((c for c in changes if c is not None), default=None)
                await live.wait_for_change(signal, wake_at, self.app.now)
        finally:
            self.app.hub.unsubscribe(who.brand, request.member_id, signal)

    async def _card(
        self, brand: str, member_id: str, target_code: str
    ) -> list[standings.ProgressView]:
        views: list[standings.ProgressView] = []
        token = ""
        while True:
            page = read_page(500, token, member=member_id)
            batch, token = await standings.list_member_progress(
                db=self.app.db,
                brand=brand,
                member_id=member_id,
                now=self.app.now(),
                page=page,
                target_code=target_code,
            )
            views.extend(batch)
            if not token:
                return views


def _parse_message(
    summary: pb.RecordTransactionsResponse, message: pb.RecordTransactionsRequest, index: int
) -> tuple[list[Transaction], list[int]]:
    """The message's well-read transactions and their positions in the stream (from `index`);
    those with a bad field are refused in `summary` here, each naming its first bad field."""
    parsed: list[Transaction] = []
    positions: list[int] = []
    # One parser for the message: a transaction's violations are those it added.
    p = m.Parser()
    found = p.violations.items
    for msg in message.transactions:
        txn = pm.transaction_from_proto(p, msg)
        if found:
            summary.refused += 1
            summary.refusals.append(
                pb.TransactionRefusal(
                    index=index,
                    transaction_id=msg.id,
                    reason="INVALID_ARGUMENT",
                    message=_describe(found),
                    field=found[0].field,
                )
            )
            found.clear()
        else:
            parsed.append(txn)
            positions.append(index)
        index += 1
    return parsed, positions


def _describe(violations: Sequence[FieldViolation]) -> str:
    """A refusal's message: its first bad fields, named as in a request, so that a transaction
    of a thousand bad lines cannot swell the summary past what a client accepts."""
    shown = violations[:MAX_REASONS]
    text = "; ".join(f"{pm.request_field(v.field)}: {v.reason}" for v in shown)
    if len(violations) > MAX_REASONS:
        text += f"; and {len(violations) - MAX_REASONS} more"
    return text


def _too_many(summary: pb.RecordTransactionsResponse) -> str:
    """Why a message ends the stream, and what the messages before it recorded."""
    done = summary.accepted + summary.duplicate + summary.refused
    return (
        f"at most {MAX_STREAM_BATCH} transactions per message: this message was not recorded;"
        f" the {done} transactions before it were ({summary.accepted} accepted,"
        f" {summary.duplicate} duplicate, {summary.refused} refused)"
    )


def _internal() -> AttainError:
    """A refusal for a server fault: the details are in the server log, not in the reply."""
    return AttainError("internal error; see the server log", reason="INTERNAL")


def _refuse(summary: pb.RecordTransactionsResponse, index: int, outcome: Outcome) -> None:
    """Counts a refused transaction and says why."""
    summary.refused += 1
    error = outcome.error
    field = ""
    message = error.message if error else ""
    if isinstance(error, InvalidArgument):
        field = error.violations[0].field
        message = _describe(error.violations)
    summary.refusals.append(
        pb.TransactionRefusal(
            index=index,
            transaction_id=outcome.transaction_id,
            reason=outcome.reason,
            message=message,
            field=field,
        )
    )
