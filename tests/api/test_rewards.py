"""RewardService end to end: SPEC examples 1-5, ledger, vouchers, badges, the award stream."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import progress_pb2 as ppb
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application.rewards import close_cycle
from attain_server.domain.errors import FailedPrecondition
from conftest import Api, Brand, FakeClock
from support import NOV_15, D, auth, fails, line, monthly_target, progress, record, sale, setup

DEC_1 = datetime(2026, 12, 1, 0, 0, tzinfo=ZoneInfo("Asia/Jakarta"))


async def awards(api: Api, brand: Brand, **filters: Any) -> list[rpb.Award]:
    response = await api.rewards.ListAwards(rpb.ListAwardsRequest(**filters), metadata=brand.admin)
    return list(response.awards)


async def balance(api: Api, brand: Brand, member: str = "M-001") -> dict[str, int]:
    response = await api.rewards.GetBalance(
        rpb.GetBalanceRequest(member_id=member), metadata=brand.admin
    )
    return {b.program: b.points for b in response.balances}


def target_with(
    code: str,
    kpi: typ.Kpi.ValueType,
    value: str,
    *rules: tpb.RewardRule,
    skus: list[str] | None = None,
) -> tpb.Target:
    return tpb.Target(
        code=code,
        criteria=[
            tpb.Criterion(
                kpi=kpi, target_value=D(value), filter=tpb.CriterionFilter(skus=skus or [])
            )
        ],
        period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date="2026-01-01"),
        rules=list(rules),
    )


async def test_spec_example_1_fixed_points_once(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    await record(api, brand, sale("T1", "4000"))
    await record(api, brand, sale("T2", "5500"))
    assert await awards(api, brand) == []
    crossing = await record(api, brand, sale("T3", "700"))
    assert [(a.rule_id, a.points, a.kind, a.state) for a in crossing.awards] == [
        ("r1", 1000, rpb.AWARD_KIND_POINTS, rpb.AWARD_STATE_GRANTED)
    ]
    assert crossing.awards[0].milestone_percent.value == "100"
    await record(api, brand, sale("T4", "5000"))
    again = await record(api, brand, sale("T3", "700"))  # a redelivery
    assert again.outcome == ppb.RECORD_OUTCOME_DUPLICATE
    assert [a.points for a in await awards(api, brand)] == [1000]
    assert await balance(api, brand) == {"POINTS": 1000}
    shown = await progress(api, brand)
    assert [a.points for a in shown.awards] == [1000]


def _milestones(*percents: str) -> tpb.RewardRule:
    return tpb.RewardRule(
        milestones=tpb.MilestonesRule(
            milestones=[
                tpb.Milestone(attainment_percent=D(p), incentive=typ.Incentive(points=int(p)))
                for p in percents
            ]
        )
    )


async def test_a_progress_read_again_shows_its_awards_and_sees_a_changed_target(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """Reads after the first find the definition cached: the row and its awards come in one
    statement with the target's version, and a changed target is read anew."""
    clock.set(NOV_15)
    target = target_with("MS", typ.KPI_TRANSACTION_AMOUNT, "1000", _milestones("50", "75", "100"))
    await setup(api, brand, target, "M-001", "M-002")
    before = await progress(api, brand, target="MS")  # no row yet
    assert (before.achieved_value.value, list(before.awards)) == ("0", [])
    await record(api, brand, sale("A", "800"))
    first = await progress(api, brand, target="MS")
    again = await progress(api, brand, target="MS")
    assert first == again
    assert first.achieved_value.value == "800"
    # One sale crossed both: awards of one instant come in milestone order.
    assert [(a.milestone_percent.value, a.points) for a in first.awards] == [("50", 50), ("75", 75)]
    assert [(m.attainment_percent.value, m.reached) for m in first.milestones] == [
        ("50", True),
        ("75", True),
        ("100", False),
    ]
    await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(
            target=tpb.Target(code="MS", rules=[_milestones("50", "75", "90", "100")]),
            update_mask=FieldMask(paths=["rules"]),
        ),
        metadata=brand.admin,
    )
    changed = await progress(api, brand, target="MS")
    assert [m.attainment_percent.value for m in changed.milestones] == ["50", "75", "90", "100"]
    assert [a.points for a in changed.awards] == [50, 75]
    other = await progress(api, brand, target="MS", member="M-002")  # no row for this member
    assert (other.achieved_value.value, list(other.awards)) == ("0", [])


async def test_spec_example_2_percentage_at_close(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    rule = tpb.RewardRule(percentage=tpb.PercentageRule(percent=D("20")))
    await setup(
        api, brand, target_with("SKU-PCT", typ.KPI_SKU_AMOUNT, "2000", rule, skus=["SKU-123"])
    )
    await record(
        api, brand, sale("A", "", lines=[line("2000", sku="SKU-123"), line("999", sku="OTHER")])
    )
    await record(api, brand, sale("B", "", lines=[line("500", sku="SKU-123")]))
    assert await awards(api, brand) == []  # nothing before the close
    clock.set(DEC_1)
    result = await close_cycle(
        db=api.app.db, brand=brand.code, target_code="SKU-PCT", cycle="2026-11", now=DEC_1
    )
    assert (result.awards, result.already_closed) == (1, False)
    [given] = await awards(api, brand)
    assert (given.points, given.HasField("milestone_percent")) == (500, False)
    assert await balance(api, brand) == {"POINTS": 500}
    second = await close_cycle(
        db=api.app.db, brand=brand.code, target_code="SKU-PCT", cycle="2026-11", now=DEC_1
    )
    assert (second.already_closed, second.awards) == (True, 0)
    assert await balance(api, brand) == {"POINTS": 500}


async def test_spec_example_3_per_x(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    five = tpb.RewardRule(
        id="five", per_x=tpb.PerXRule(every=D("10"), points=5), min_attainment_percent=D("0")
    )
    one = tpb.RewardRule(id="one", per_x=tpb.PerXRule(every=D("10"), points=1))
    await setup(
        api, brand, target_with("QTY", typ.KPI_SKU_QUANTITY, "100", five, one, skus=["SKU-9"])
    )
    await record(api, brand, sale("A", "", lines=[line("10", sku="SKU-9", qty="30")]))
    await record(api, brand, sale("B", "", lines=[line("10", sku="SKU-9", qty="7")]))
    clock.set(DEC_1)
    await close_cycle(
        db=api.app.db, brand=brand.code, target_code="QTY", cycle="2026-11", now=DEC_1
    )
    assert {a.rule_id: a.points for a in await awards(api, brand)} == {"five": 15, "one": 3}


async def test_spec_example_4_one_sale_crosses_two_milestones(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    rule = tpb.RewardRule(
        milestones=tpb.MilestonesRule(
            milestones=[
                tpb.Milestone(attainment_percent=D("50"), incentive=typ.Incentive(points=50)),
                tpb.Milestone(attainment_percent=D("75"), incentive=typ.Incentive(points=100)),
                tpb.Milestone(attainment_percent=D("100"), incentive=typ.Incentive(points=300)),
            ]
        )
    )
    await setup(api, brand, target_with("MS", typ.KPI_TRANSACTION_AMOUNT, "1000", rule))
    first = await record(api, brand, sale("A", "400"))
    assert list(first.awards) == []
    crossing = await record(api, brand, sale("B", "400"))
    assert [(a.milestone_percent.value, a.points) for a in crossing.awards] == [
        ("50", 50),
        ("75", 100),
    ]
    p = await progress(api, brand, target="MS")
    assert [(m.attainment_percent.value, m.reached) for m in p.milestones] == [
        ("50", True),
        ("75", True),
        ("100", False),
    ]
    assert p.next_milestone.attainment_percent.value == "100"
    assert await balance(api, brand) == {"POINTS": 150}


async def test_awards_of_one_instant_list_in_the_order_they_were_earned(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    # One sale crosses five milestones at once: the five awards share their create time, and
    # ListAwards (paged by time, then id) still lists them lowest first. With random ids this
    # order would come out by chance once in 120 runs.
    clock.set(NOV_15)
    steps = ["10", "20", "30", "40", "50"]
    rule = tpb.RewardRule(
        milestones=tpb.MilestonesRule(
            milestones=[
                tpb.Milestone(attainment_percent=D(p), incentive=typ.Incentive(points=int(p)))
                for p in steps
            ]
        )
    )
    await setup(api, brand, target_with("FIVE", typ.KPI_TRANSACTION_AMOUNT, "1000", rule))
    crossing = await record(api, brand, sale("A", "600"))
    assert [a.milestone_percent.value for a in crossing.awards] == steps
    listed = await awards(api, brand)
    assert len({a.create_time.ToDatetime() for a in listed}) == 1
    assert [a.milestone_percent.value for a in listed] == steps
    one_by_one = []
    token = ""
    while True:
        page = await api.rewards.ListAwards(
            rpb.ListAwardsRequest(page_size=2, page_token=token), metadata=brand.admin
        )
        one_by_one += [a.milestone_percent.value for a in page.awards]
        token = page.next_page_token
        if not token:
            break
    assert one_by_one == steps


async def test_spec_example_5_levels(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    target = target_with(
        "LEVELS",
        typ.KPI_TRANSACTION_AMOUNT,
        "15000",
        tpb.RewardRule(
            id="gold", levels=["GOLD"], fixed=tpb.FixedRule(incentive=typ.Incentive(points=2000))
        ),
        tpb.RewardRule(
            id="silver", levels=["SILVER"], fixed=tpb.FixedRule(incentive=typ.Incentive(points=800))
        ),
    )
    target.criteria[0].level_target_values["GOLD"].value = "20000"
    target.criteria[0].level_target_values["SILVER"].value = "10000"
    await api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    for member, level in (("G", "GOLD"), ("S", "SILVER")):
        await api.targets.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id=member, level=level)),
            metadata=brand.admin,
        )
    await record(api, brand, sale("G1", "12000", member="G"))
    await record(api, brand, sale("S1", "12000", member="S"))
    assert {a.member_id: a.points for a in await awards(api, brand)} == {"S": 800}
    await record(api, brand, sale("G2", "8000", member="G"))
    assert {a.member_id: a.points for a in await awards(api, brand)} == {"S": 800, "G": 2000}


async def test_programs_caps_and_reversal_at_close(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await api.targets.CreateProgram(
        tpb.CreateProgramRequest(program=tpb.Program(code="STARS")), metadata=brand.admin
    )
    target = target_with(
        "RULES",
        typ.KPI_TRANSACTION_AMOUNT,
        "1000",
        tpb.RewardRule(
            id="keep",
            fixed=tpb.FixedRule(threshold_percent=D("50"), incentive=typ.Incentive(points=10)),
        ),
        tpb.RewardRule(
            id="back",
            program="STARS",
            reversal_policy=tpb.REVERSAL_POLICY_REVERSE_AT_CLOSE,
            milestones=tpb.MilestonesRule(
                milestones=[
                    tpb.Milestone(attainment_percent=D("50"), incentive=typ.Incentive(points=70)),
                    tpb.Milestone(attainment_percent=D("100"), incentive=typ.Incentive(points=70)),
                ]
            ),
            cap_points=100,
        ),
    )
    await setup(api, brand, target)
    await record(api, brand, sale("A", "1000"))
    assert await balance(api, brand) == {"POINTS": 10, "STARS": 100}  # 70 + 30 (capped)
    await record(
        api,
        brand,
        ppb.Transaction(
            id="R",
            member_id="M-001",
            occurred_time=sale("x", "1").occurred_time,
            store_id="S1",
            type=ppb.TRANSACTION_TYPE_RETURN,
            original_transaction_id="A",
            lines=[ppb.TransactionLine(sku="SKU-1", quantity=D("0"), amount=D("400"))],
        ),
    )
    assert await balance(api, brand) == {"POINTS": 10, "STARS": 100}  # kept until the close
    clock.set(DEC_1)
    result = await close_cycle(
        db=api.app.db, brand=brand.code, target_code="RULES", cycle="2026-11", now=DEC_1
    )
    assert result.reversals == 1  # 60% still reaches 50%: only the 100% award goes back
    assert await balance(api, brand) == {"POINTS": 10, "STARS": 70}
    states = {(a.rule_id, a.milestone_percent.value): a.state for a in await awards(api, brand)}
    assert states == {
        ("keep", "50"): rpb.AWARD_STATE_GRANTED,
        ("back", "50"): rpb.AWARD_STATE_GRANTED,
        ("back", "100"): rpb.AWARD_STATE_REVERSED,
    }
    ledger = await api.rewards.ListLedgerEntries(
        rpb.ListLedgerEntriesRequest(member_id="M-001", program="STARS"), metadata=brand.admin
    )
    # Newest first; the two awards share a timestamp, so compare them as a set.
    kinds = [(e.kind, e.points) for e in ledger.entries]
    assert kinds[0] == (rpb.LEDGER_ENTRY_KIND_REVERSAL, -30)
    assert sorted(kinds[1:]) == [
        (rpb.LEDGER_ENTRY_KIND_AWARD, 30),
        (rpb.LEDGER_ENTRY_KIND_AWARD, 70),
    ]


async def test_close_refuses_a_cycle_still_open(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    with pytest.raises(FailedPrecondition) as error:
        await close_cycle(
            db=api.app.db, brand=brand.code, target_code="NOV-SALES", cycle="2026-11", now=NOV_15
        )
    assert error.value.reason == "CYCLE_NOT_OVER"


async def test_concurrent_closes_give_one_set_of_awards(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    rule = tpb.RewardRule(percentage=tpb.PercentageRule(percent=D("10")))
    members = [f"M{i:03}" for i in range(60)]
    await setup(api, brand, target_with("PCT", typ.KPI_TRANSACTION_AMOUNT, "100", rule), *members)
    for i, member in enumerate(members):
        await record(api, brand, sale(f"T{i}", str(10 * (i + 1)), member=member))
    clock.set(DEC_1)
    results = await asyncio.gather(
        *(
            close_cycle(
                db=api.app.db, brand=brand.code, target_code="PCT", cycle="2026-11", now=DEC_1
            )
            for _ in range(4)
        )
    )
    given = await awards(api, brand, page_size=1000)
    assert len(given) == 60 and sum(r.awards for r in results) == 60
    assert sorted(a.points for a in given) == [i + 1 for i in range(60)]


async def test_adjust_points_is_idempotent_and_append_only(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    await setup(api, brand, monthly_target())
    request = rpb.AdjustPointsRequest(
        request_id="fix-1", member_id="M-001", points=250, reason="goodwill"
    )
    first = await api.rewards.AdjustPoints(request, metadata=brand.admin)
    again = await api.rewards.AdjustPoints(request, metadata=brand.admin)
    assert first.entry == again.entry and (first.balance, again.balance) == (250, 250)
    minus = await api.rewards.AdjustPoints(
        rpb.AdjustPointsRequest(
            request_id="fix-2", member_id="M-001", points=-50, reason="correction"
        ),
        metadata=brand.admin,
    )
    assert minus.balance == 200
    reused = await fails(
        api.rewards.AdjustPoints(
            rpb.AdjustPointsRequest(
                request_id="fix-1", member_id="M-001", points=999, reason="other"
            ),
            metadata=brand.admin,
        )
    )
    assert reused.code is grpc.StatusCode.ALREADY_EXISTS
    bad = await fails(
        api.rewards.AdjustPoints(
            rpb.AdjustPointsRequest(request_id="", member_id="M-001", points=0, reason=" "),
            metadata=brand.admin,
        )
    )
    assert set(bad.violations) == {"request_id", "points", "reason"}
    assert await balance(api, brand) == {"POINTS": 200}


async def test_vouchers_exhaust_then_refill(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    rule = tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(voucher_pool="TEN-OFF")))
    members = [f"V{i}" for i in range(5)]
    await setup(api, brand, target_with("VOUCH", typ.KPI_TRANSACTION_AMOUNT, "100", rule), *members)
    loaded = await api.rewards.LoadVouchers(
        rpb.LoadVouchersRequest(pool="TEN-OFF", codes=["C1", "C2", "C2"]), metadata=brand.admin
    )
    assert (loaded.loaded, loaded.duplicates, loaded.available) == (2, 1, 2)
    results = await asyncio.gather(
        *(record(api, brand, sale(f"T-{m}", "150", member=m)) for m in members)
    )
    given = [a for r in results for a in r.awards]
    granted = [a for a in given if a.state == rpb.AWARD_STATE_GRANTED]
    pending = [a for a in given if a.state == rpb.AWARD_STATE_PENDING]
    assert sorted(a.voucher_code for a in granted) == ["C1", "C2"]
    assert len(pending) == 3 and "no free code" in pending[0].pending_reason
    refill = await api.rewards.LoadVouchers(
        rpb.LoadVouchersRequest(pool="TEN-OFF", codes=["C3", "C4"]), metadata=brand.admin
    )
    assert (refill.loaded, refill.fulfilled, refill.available) == (2, 2, 0)
    everything = await awards(api, brand)
    codes = [a.voucher_code for a in everything if a.state == rpb.AWARD_STATE_GRANTED]
    assert sorted(codes) == ["C1", "C2", "C3", "C4"] and len(set(codes)) == 4
    pools = await api.rewards.ListVoucherPools(rpb.ListVoucherPoolsRequest(), metadata=brand.admin)
    assert [(p.pool, p.total, p.available) for p in pools.pools] == [("TEN-OFF", 4, 0)]


async def test_badges_once_per_member_rule_and_cycle(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    rule = tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(badge="Champion")))
    await setup(api, brand, target_with("BADGE", typ.KPI_TRANSACTION_AMOUNT, "100", rule))
    await record(api, brand, sale("A", "100"))
    await record(api, brand, sale("B", "100"))
    badges = await api.rewards.ListBadges(
        rpb.ListBadgesRequest(member_id="M-001"), metadata=brand.admin
    )
    assert [(b.badge, b.cycle) for b in badges.badges] == [("Champion", "2026-11")]


async def test_watch_awards_resumes_from_a_cursor_without_gaps_or_duplicates(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    rule = tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=1)))
    members = [f"W{i:02}" for i in range(12)]
    await setup(api, brand, target_with("STREAM", typ.KPI_TRANSACTION_AMOUNT, "10", rule), *members)
    for member in members[:5]:
        await record(api, brand, sale(f"T-{member}", "10", member=member))
    seen: list[str] = []
    stream: Any = api.rewards.WatchAwards(rpb.WatchAwardsRequest(), metadata=brand.admin)
    cursor = ""
    for _ in range(3):
        response = await asyncio.wait_for(stream.read(), 10)
        seen.append(response.award.member_id)
        cursor = response.award.cursor
    stream.cancel()  # disconnect mid-stream
    for member in members[5:]:
        await record(api, brand, sale(f"T-{member}", "10", member=member))
    resumed: Any = api.rewards.WatchAwards(
        rpb.WatchAwardsRequest(cursor=cursor), metadata=brand.admin
    )
    while len(seen) < len(members):
        response = await asyncio.wait_for(resumed.read(), 10)
        seen.append(response.award.member_id)
    resumed.cancel()
    assert seen == members  # every award once, in order


async def test_member_keys_see_only_their_own_awards(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="100"), "M-001", "M-002")
    await record(api, brand, sale("A", "100", member="M-001"))
    await record(api, brand, sale("B", "100", member="M-002"))
    key = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="M-001"), metadata=brand.admin
    )
    mine = await api.rewards.ListAwards(rpb.ListAwardsRequest(), metadata=auth(key.secret))
    assert {a.member_id for a in mine.awards} == {"M-001"}
    other = await fails(
        api.rewards.GetBalance(rpb.GetBalanceRequest(member_id="M-002"), metadata=auth(key.secret))
    )
    assert other.code is grpc.StatusCode.PERMISSION_DENIED
    own = await api.rewards.GetBalance(rpb.GetBalanceRequest(), metadata=auth(key.secret))
    assert [(b.program, b.points) for b in own.balances] == [("POINTS", 1000)]
