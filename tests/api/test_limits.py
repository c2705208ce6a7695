"""Numbers and dates the store and the calendar can hold: refused with the field named when
they cannot, and an odd stored target never turning its brand's calls into INTERNAL."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import grpc

from attain.v1 import progress_pb2 as ppb
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application.awards import new_id
from attain_server.domain.model import (
    Incentive,
    IncentiveKind,
    Milestone,
    MilestonesSpec,
    RewardRule,
)
from attain_server.domain.rewards import MAX_BALANCE, MAX_POINTS
from attain_server.store.tables import LedgerEntryRow
from conftest import Api, Brand, FakeClock
from support import (
    NOV_15,
    D,
    amount_target,
    fails,
    monthly_target,
    progress,
    record,
    sale,
    setup,
    stored_target,
)

BIGINT = 2**63 - 1


async def test_create_target_names_every_number_or_date_out_of_bounds(
    api: Api, brand: Brand
) -> None:
    huge = "9999999999999999999999999999"
    target = monthly_target(
        "BOUNDS",
        period=tpb.Period(
            kind=typ.PERIOD_KIND_MONTHLY, start_date="0001-01-01", end_date="9999-12-31"
        ),
        rules=[
            tpb.RewardRule(percentage=tpb.PercentageRule(percent=D(huge))),
            tpb.RewardRule(
                fixed=tpb.FixedRule(
                    threshold_percent=D(huge), incentive=typ.Incentive(points=BIGINT)
                ),
                min_attainment_percent=D("1000000.01"),
                cap_points=MAX_POINTS + 1,
            ),
            tpb.RewardRule(per_x=tpb.PerXRule(every=D(huge), points=MAX_POINTS + 1)),
            tpb.RewardRule(
                milestones=tpb.MilestonesRule(
                    milestones=[
                        tpb.Milestone(
                            attainment_percent=D(huge), incentive=typ.Incentive(points=BIGINT)
                        )
                    ]
                )
            ),
        ],
    )
    bad = await fails(
        api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    )
    assert bad.code is grpc.StatusCode.INVALID_ARGUMENT
    days = "must be between 1900-01-01 and 2999-12-31"
    percent = "must be greater than 0 and at most 1,000,000"
    points = "must be a whole number from 1 to 1,000,000,000,000"
    assert bad.violations == {
        "target.period.start_date": days,
        "target.period.end_date": days,
        "target.rules[0].percentage.percent": percent,
        "target.rules[1].min_attainment_percent": "must be between 0 and 1,000,000",
        "target.rules[1].cap_points": f"{points} (leave unset for no cap)",
        "target.rules[1].fixed.threshold_percent": percent,
        "target.rules[1].fixed.incentive.points": points,
        "target.rules[2].per_x.every": "must be greater than 0 and at most 1,000,000,000,000,000",
        "target.rules[2].per_x.points": points,
        "target.rules[3].milestones.milestones[0].attainment_percent": percent,
        "target.rules[3].milestones.milestones[0].incentive.points": points,
    }
    for start in ("9999-12-31", "1899-12-31", "3000-01-01"):
        late = monthly_target(
            "LATE", period=tpb.Period(kind=typ.PERIOD_KIND_YEARLY, start_date=start)
        )
        refused = await fails(
            api.targets.CreateTarget(tpb.CreateTargetRequest(target=late), metadata=brand.admin)
        )
        assert refused.violations == {"target.period.start_date": days}, start
    # The edges themselves are accepted, the longest EVERY_N_DAYS cycle past the last day too.
    edges = [
        ("FIRST", tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date="1900-01-01")),
        (
            "LAST",
            tpb.Period(
                kind=typ.PERIOD_KIND_EVERY_N_DAYS, start_date="2999-12-31", every_n_days=3660
            ),
        ),
    ]
    for code, period in edges:
        await api.targets.CreateTarget(
            tpb.CreateTargetRequest(target=monthly_target(code, period=period)),
            metadata=brand.admin,
        )
    cycles = await api.targets.ListCycles(
        tpb.ListCyclesRequest(target_code="LAST"), metadata=brand.admin
    )
    assert [(c.name, c.end_date) for c in cycles.cycles] == [("2999-12-31", "3010-01-07")]


async def test_an_unusable_stored_target_never_makes_its_brands_calls_internal(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    await setup(api, brand, monthly_target("GOOD"), "M-001")
    await stored_target(api.app.db, brand.code, amount_target("ODD", date(1, 1, 1)))
    await stored_target(api.app.db, brand.code, amount_target("LATE", date(9999, 12, 31)))
    clock.set(NOV_15)

    recorded = await record(api, brand, sale("T1", "500"))
    assert [p.target_code for p in recorded.progress] == ["GOOD"]
    assert (await progress(api, brand, "GOOD")).achieved_value.value == "500"
    card = await api.progress.ListMemberProgress(
        ppb.ListMemberProgressRequest(member_id="M-001"), metadata=brand.admin
    )
    assert [p.target_code for p in card.progress] == ["GOOD"]
    cycles = await api.targets.ListCycles(
        tpb.ListCyclesRequest(target_code="GOOD", page_size=1), metadata=brand.admin
    )
    assert [c.name for c in cycles.cycles] == ["2026-11"]

    for code, day in (("ODD", "0001-01-01"), ("LATE", "9999-12-31")):
        calls: list[Awaitable[Any]] = [
            api.progress.GetProgress(
                ppb.GetProgressRequest(member_id="M-001", target_code=code), metadata=brand.admin
            ),
            api.progress.ListProgress(
                ppb.ListProgressRequest(target_code=code), metadata=brand.admin
            ),
            api.targets.ListCycles(tpb.ListCyclesRequest(target_code=code), metadata=brand.admin),
        ]
        for call in calls:
            refused = await fails(call)
            assert refused.code is grpc.StatusCode.FAILED_PRECONDITION, refused
            assert refused.reason == "TARGET_UNUSABLE"
            assert day in refused.message and "update its period" in refused.message
        value = tpb.TargetValue(member_id="M-001", target_code=code, cycle="2026-11", value=D("5"))
        bad_value = await fails(
            api.targets.SetTargetValues(
                tpb.SetTargetValuesRequest(values=[value]), metadata=brand.admin
            )
        )
        assert "update its period" in bad_value.violations["values[0].target_code"]


async def test_a_sale_crossing_two_maximal_awards_leaves_the_balance_readable(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    def milestones(points: int) -> list[tpb.RewardRule]:
        return [
            tpb.RewardRule(
                milestones=tpb.MilestonesRule(
                    milestones=[
                        tpb.Milestone(
                            attainment_percent=D(pct), incentive=typ.Incentive(points=points)
                        )
                        for pct in ("50", "100")
                    ]
                )
            )
        ]

    refused = await fails(
        api.targets.CreateTarget(
            tpb.CreateTargetRequest(target=monthly_target("TOO", rules=milestones(BIGINT))),
            metadata=brand.admin,
        )
    )
    assert set(refused.violations) == {
        f"target.rules[0].milestones.milestones[{i}].incentive.points" for i in (0, 1)
    }
    await setup(api, brand, monthly_target("MAX", rules=milestones(MAX_POINTS)), "M-001")
    # One saved before the bounds existed, with BIGINT's largest at each milestone.
    legacy = RewardRule(
        "r1",
        MilestonesSpec(
            tuple(
                Milestone(Decimal(pct), Incentive(IncentiveKind.POINTS, points=BIGINT))
                for pct in (50, 100)
            )
        ),
    )
    old = dataclasses.replace(
        amount_target("OLD", date(2026, 1, 1), Decimal(10000)), rules=(legacy,)
    )
    await stored_target(api.app.db, brand.code, old)
    clock.set(NOV_15)

    crossed = await record(api, brand, sale("T1", "10000"))
    assert [(a.target_code, a.points) for a in crossed.awards] == [("MAX", MAX_POINTS)] * 2
    balance = await api.rewards.GetBalance(
        rpb.GetBalanceRequest(member_id="M-001"), metadata=brand.admin
    )
    assert [b.points for b in balance.balances] == [2 * MAX_POINTS]
    fixed = await api.rewards.AdjustPoints(
        rpb.AdjustPointsRequest(request_id="fix", member_id="M-001", points=-1, reason="fix"),
        metadata=brand.admin,
    )
    assert fixed.balance == 2 * MAX_POINTS - 1


def adjustment(request_id: str, points: int) -> rpb.AdjustPointsRequest:
    return rpb.AdjustPointsRequest(
        request_id=request_id, member_id="M-001", points=points, reason="correction"
    )


async def ledger_points(api: Api, brand: Brand) -> list[int]:
    listed = await api.rewards.ListLedgerEntries(
        rpb.ListLedgerEntriesRequest(member_id="M-001"), metadata=brand.admin
    )
    return sorted(e.points for e in listed.entries)


async def balance_of(api: Api, brand: Brand) -> int:
    found = await api.rewards.GetBalance(
        rpb.GetBalanceRequest(member_id="M-001"), metadata=brand.admin
    )
    return found.balances[0].points


async def stored_entries(api: Api, brand: Brand, *points: int) -> None:
    """Ledger entries written straight to the store in this order (awards add to balances
    this way too, without AdjustPoints' checks)."""
    balance = await api.rewards.GetBalance(
        rpb.GetBalanceRequest(member_id="M-001"), metadata=brand.admin
    )
    for each in points:
        async with api.app.db.write() as s:
            s.add(
                LedgerEntryRow(
                    brand_code=brand.code,
                    id=new_id(),
                    member_id="M-001",
                    program=balance.balances[0].program,
                    points=each,
                    kind="AWARD",
                    reason="stored",
                    create_time=datetime.now(UTC),
                )
            )


async def test_adjust_points_within_bounds_and_a_refusal_commits_nothing(
    api: Api, brand: Brand
) -> None:
    await setup(api, brand, monthly_target(), "M-001")
    for request_id, points in (("a", BIGINT), ("b", -BIGINT - 1), ("c", MAX_POINTS + 1)):
        bad = await fails(
            api.rewards.AdjustPoints(adjustment(request_id, points), metadata=brand.admin)
        )
        assert bad.code is grpc.StatusCode.INVALID_ARGUMENT
        assert bad.violations == {
            "points": "must be between -1,000,000,000,000 and 1,000,000,000,000"
        }
    assert await ledger_points(api, brand) == []
    assert await balance_of(api, brand) == 0

    most = await api.rewards.AdjustPoints(adjustment("most", -MAX_POINTS), metadata=brand.admin)
    assert most.balance == -MAX_POINTS
    # Near the largest balance (awards can take one there), an adjustment may not pass it.
    await stored_entries(api, brand, MAX_BALANCE + MAX_POINTS - 5)
    past = await fails(api.rewards.AdjustPoints(adjustment("past", 10), metadata=brand.admin))
    assert past.code is grpc.StatusCode.FAILED_PRECONDITION and past.reason == "BALANCE_LIMIT"
    assert f"{MAX_BALANCE - 5:,} to {MAX_BALANCE + 5:,}" in past.message
    assert await ledger_points(api, brand) == [-MAX_POINTS, MAX_BALANCE + MAX_POINTS - 5]
    assert await balance_of(api, brand) == MAX_BALANCE - 5
    # Nothing of the refused request was kept: its id is free for what it should have been.
    back = await api.rewards.AdjustPoints(adjustment("past", -10), metadata=brand.admin)
    assert back.balance == MAX_BALANCE - 15
    assert await balance_of(api, brand) == MAX_BALANCE - 15


async def test_a_balance_whose_running_sum_passes_64_bits_reads_and_corrects(
    api: Api, brand: Brand
) -> None:
    """SQLite sums integers with a 64-bit running total: these entries read 2^62 only when
    summed without it."""
    await setup(api, brand, monthly_target(), "M-001")
    await stored_entries(api, brand, 2**62, 2**62, -(2**62))
    assert await balance_of(api, brand) == 2**62
    # Past the largest balance (not by an adjustment): one may bring it back, never further.
    down = await api.rewards.AdjustPoints(adjustment("down", -MAX_POINTS), metadata=brand.admin)
    assert down.balance == 2**62 - MAX_POINTS
    up = await fails(api.rewards.AdjustPoints(adjustment("up", 1), metadata=brand.admin))
    assert up.code is grpc.StatusCode.FAILED_PRECONDITION and up.reason == "BALANCE_LIMIT"
    assert await balance_of(api, brand) == 2**62 - MAX_POINTS
