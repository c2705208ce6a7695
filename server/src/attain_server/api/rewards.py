"""RewardService: awards, balances, the ledger, adjustments, vouchers, badges, the award stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from attain.v1 import rewards_pb2 as pb
from attain.v1 import rewards_pb2_grpc
from attain_server.app import App
from attain_server.application import live, rewards
from attain_server.application.paging import parse_position, read_page
from attain_server.domain.errors import InvalidArgument
from attain_server.domain.model import Role
from attain_server.domain.validation import MAX_CYCLE, require_code, require_label

from . import mapping as m
from . import reward_mapping as rm
from .gate import principal

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# Award events a stream reads at a time.
WATCH_PAGE = 100


def _member_scope(member_id: str, required: bool = False) -> str:
    """A member key may only name itself; an empty filter means "myself" for it."""
    who = principal()
    if who.role is Role.MEMBER:
        if member_id:
            who.require_member_access(member_id)
        return who.member_id
    if required and not member_id:
        raise InvalidArgument.one("member_id", "is required")
    require_label("member_id", member_id, required=False)
    return member_id


class RewardServicer(rewards_pb2_grpc.RewardServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    async def ListAwards(
        self, request: pb.ListAwardsRequest, context: Ctx
    ) -> pb.ListAwardsResponse:
        member_id = _member_scope(request.member_id)
        require_code("target_code", request.target_code, required=False)
        require_label("cycle", request.cycle, required=False, limit=MAX_CYCLE)
        kind = ""
        if request.kind:
            if request.kind not in rm.AWARD_KIND_FROM_PROTO:
                raise InvalidArgument.one("kind", f"unknown award kind {request.kind}")
            kind = rm.AWARD_KIND_FROM_PROTO[request.kind]
        page = read_page(
            request.page_size,
            request.page_token,
            member=member_id,
            target=request.target_code,
            cycle=request.cycle,
            kind=kind,
        )
        rows, token = await rewards.list_awards(
            db=self.app.db,
            brand=principal().brand,
            page=page,
            member_id=member_id,
            target_code=request.target_code,
            cycle=request.cycle,
            kind=kind,
        )
        return pb.ListAwardsResponse(
            awards=[rm.award_to_proto(a) for a in rows], next_page_token=token
        )

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: Ctx
    ) -> pb.GetBalanceResponse:
        member_id = _member_scope(request.member_id, required=True)
        require_code("program", request.program, required=False)
        found = await rewards.balances(
            db=self.app.db, brand=principal().brand, member_id=member_id, program=request.program
        )
        return pb.GetBalanceResponse(
            member_id=member_id,
            balances=[pb.Balance(program=code, points=points) for code, points in found],
        )

    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: Ctx
    ) -> pb.ListLedgerEntriesResponse:
        member_id = _member_scope(request.member_id, required=True)
        require_code("program", request.program, required=False)
        page = read_page(
            request.page_size, request.page_token, member=member_id, program=request.program
        )
        rows, token = await rewards.list_ledger(
            db=self.app.db,
            brand=principal().brand,
            member_id=member_id,
            program=request.program,
            page=page,
        )
        return pb.ListLedgerEntriesResponse(
            entries=[rm.ledger_to_proto(e) for e in rows], next_page_token=token
        )

    async def AdjustPoints(
        self, request: pb.AdjustPointsRequest, context: Ctx
    ) -> pb.AdjustPointsResponse:
        entry, balance = await rewards.adjust_points(
            db=self.app.db,
            brand=principal().brand,
            request_id=request.request_id,
            member_id=request.member_id,
            program=request.program,
            points=request.points,
            reason=request.reason,
            now=self.app.now(),
        )
        return pb.AdjustPointsResponse(entry=rm.ledger_to_proto(entry), balance=balance)

    async def WatchAwards(
        self, request: pb.WatchAwardsRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchAwardsResponse]:
        member_id = _member_scope(request.member_id)
        cursor = parse_position(request.cursor, "cursor")
        brand = principal().brand
        signal = self.app.award_hub.subscribe(brand, member_id)
        try:
            while True:
                signal.clear()
                page = await self._award_page(brand, cursor, member_id)
                for seq, raw in page:
                    cursor = seq
                    yield pb.WatchAwardsResponse.FromString(raw)
                if len(page) == WATCH_PAGE:
                    continue  # more are waiting: no need to sleep
                # Awards change only by writes, each of which signals: nothing to poll for.
                await live.wait_for_change(signal, None, self.app.now)
        finally:
            self.app.award_hub.unsubscribe(brand, member_id, signal)

    async def _award_page(self, brand: str, cursor: int, member_id: str) -> list[tuple[int, bytes]]:
        """The next events after `cursor`, each as its serialized message: a page is what
        waits for a slow reader, and a message object holds an arena of about 1.5 KiB where
        its bytes take a few dozen (a row takes more still)."""
        events = await rewards.award_events(
            db=self.app.db, brand=brand, after=cursor, member_id=member_id, limit=WATCH_PAGE
        )
        return [
            (seq, pb.WatchAwardsResponse(award=rm.award_to_proto(a, seq)).SerializeToString())
            for seq, a in events
        ]

    async def LoadVouchers(
        self, request: pb.LoadVouchersRequest, context: Ctx
    ) -> pb.LoadVouchersResponse:
        result = await rewards.load_vouchers(
            db=self.app.db,
            brand=principal().brand,
            pool=request.pool,
            codes=list(request.codes),
            now=self.app.now(),
        )
        if result.fulfilled:
            self.app.award_hub.publish(principal().brand, {a.member_id for a in result.fulfilled})
        return pb.LoadVouchersResponse(
            loaded=result.loaded,
            duplicates=result.duplicates,
            available=result.available,
            fulfilled=len(result.fulfilled),
        )

    async def ListVoucherPools(
        self, request: pb.ListVoucherPoolsRequest, context: Ctx
    ) -> pb.ListVoucherPoolsResponse:
        page = read_page(request.page_size, request.page_token)
        pools, token = await rewards.voucher_pools(
            db=self.app.db, brand=principal().brand, page=page
        )
        return pb.ListVoucherPoolsResponse(
            pools=[pb.VoucherPool(pool=p, total=t, available=a) for p, t, a in pools],
            next_page_token=token,
        )

    async def ListBadges(
        self, request: pb.ListBadgesRequest, context: Ctx
    ) -> pb.ListBadgesResponse:
        member_id = _member_scope(request.member_id, required=True)
        page = read_page(request.page_size, request.page_token, member=member_id)
        rows, token = await rewards.list_awards(
            db=self.app.db, brand=principal().brand, page=page, member_id=member_id, kind="BADGE"
        )
        return pb.ListBadgesResponse(
            badges=[
                pb.BadgeGrant(
                    badge=a.badge,
                    member_id=a.member_id,
                    target_code=a.target_code,
                    cycle=a.cycle,
                    rule_id=a.rule_id,
                    grant_time=m.timestamp(a.create_time),
                )
                for a in rows
                if a.state == "GRANTED"
            ],
            next_page_token=token,
        )
