"""ProgressService end to end: SPEC examples 1, 6, 7 and 8, ingestion rules, reads and streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import progress_pb2 as ppb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from conftest import Api, Brand, FakeClock
from support import (
    JAKARTA,
    NOV_15,
    D,
    auth,
    fails,
    line,
    monthly_target,
    progress,
    record,
    refund,
    sale,
    setup,
    ts,
)


async def test_spec_example_1_monthly_total_transaction(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    first = await record(api, brand, sale("T1", "4000"))
    assert first.outcome == ppb.RECORD_OUTCOME_ACCEPTED
    assert [p.achieved_value.value for p in first.progress] == ["4000"]
    await record(api, brand, sale("T2", "5500"))
    p = await progress(api, brand)
    assert (p.cycle, p.attainment_display, p.colour) == ("2026-11", "95.00", typ.COLOUR_ORANGE)
    assert (p.remaining_value.value, p.attainment_percent.value) == ("500.00", "95")
    assert p.cycle_state == typ.CYCLE_STATE_OPEN and not p.complete
    assert p.days_left == 16  # 15..30 November, today included
    assert p.daily_pace_needed.value == "31.25"
    assert [(m.attainment_percent.value, m.reached) for m in p.milestones] == [("100", False)]
    assert p.next_milestone.attainment_percent.value == "100"
    await record(api, brand, sale("T3", "700"))
    p = await progress(api, brand)
    assert (p.attainment_display, p.colour, p.complete) == ("102.00", typ.COLOUR_GREEN, True)
    assert p.remaining_value.value == "0" and p.milestones[0].reached
    assert not p.HasField("next_milestone")
    # The 1st of the next month: a new cycle at zero.
    clock.set(datetime(2026, 12, 1, 0, 0, tzinfo=JAKARTA))
    p = await progress(api, brand)
    assert (p.cycle, p.attainment_display, p.colour) == ("2026-12", "0.00", typ.COLOUR_RED)
    assert p.achieved_value.value == "0" and p.version == 0
    november = await progress(api, brand, cycle="2026-11")
    assert november.achieved_value.value == "10200"
    assert november.cycle_state == typ.CYCLE_STATE_CLOSED  # offset 0: closed at midnight


async def test_spec_example_6_late_data_in_grace_then_refused(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    target = monthly_target(
        "Q-SALES",
        period=tpb.Period(kind=typ.PERIOD_KIND_QUARTERLY, start_date="2026-01-01"),
        offset_days=3,
    )
    await setup(api, brand, target)
    dec_30 = datetime(2026, 12, 30, 15, tzinfo=JAKARTA)
    clock.set(datetime(2027, 1, 2, 9, tzinfo=JAKARTA))  # it arrives on 2 January
    late = await record(api, brand, sale("LATE-1", "1500", when=dec_30))
    assert late.outcome == ppb.RECORD_OUTCOME_ACCEPTED
    assert [(p.cycle, p.cycle_state) for p in late.progress] == [("2026-Q4", typ.CYCLE_STATE_GRACE)]
    clock.set(datetime(2027, 1, 4, 0, 0, tzinfo=JAKARTA))  # grace over
    refused = await fails(record(api, brand, sale("LATE-2", "100", when=dec_30)))
    assert refused.code is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.reason == "CYCLE_CLOSED" and "Q-SALES 2026-Q4" in refused.message
    q4 = await progress(api, brand, target="Q-SALES", cycle="2026-Q4")
    assert q4.achieved_value.value == "1500"  # the refused sale was not counted anywhere


async def test_spec_example_7_return_leaves_97_percent(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    await record(api, brand, sale("S-1", "10200"))
    returned = await record(api, brand, refund("R-1", "S-1", "500"))
    assert returned.outcome == ppb.RECORD_OUTCOME_ACCEPTED
    p = await progress(api, brand)
    assert (p.achieved_value.value, p.attainment_display, p.colour) == (
        "9700",
        "97.00",
        typ.COLOUR_ORANGE,
    )


async def test_spec_example_8_member_value_replaces_default(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001", "M-002")
    await api.targets.SetTargetValues(
        tpb.SetTargetValuesRequest(
            values=[
                tpb.TargetValue(
                    member_id="M-001", target_code="NOV-SALES", cycle="2026-11", value=D("12000")
                )
            ]
        ),
        metadata=brand.admin,
    )
    await record(api, brand, sale("A", "6000", member="M-001"))
    await record(api, brand, sale("B", "6000", member="M-002"))
    mine, other = await progress(api, brand), await progress(api, brand, member="M-002")
    assert (mine.target_value.value, mine.attainment_display) == ("12000", "50.00")
    assert (other.target_value.value, other.attainment_display) == ("10000.00", "60.00")


async def test_level_values_are_recorded_when_the_row_opens(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """SPEC example 5's values: GOLD 20,000, SILVER 10,000."""
    clock.set(NOV_15)
    target = monthly_target()
    target.criteria[0].level_target_values["GOLD"].value = "20000"
    target.criteria[0].level_target_values["SILVER"].value = "10000"
    await api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    for member, level in (("G", "GOLD"), ("S", "SILVER")):
        await api.targets.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id=member, level=level)),
            metadata=brand.admin,
        )
        await record(api, brand, sale(f"T-{member}", "5000", member=member))
    gold, silver = await progress(api, brand, member="G"), await progress(api, brand, member="S")
    assert (gold.level, gold.target_value.value, gold.attainment_display) == (
        "GOLD",
        "20000",
        "25.00",
    )
    assert (silver.level, silver.target_value.value) == ("SILVER", "10000")
    # A level change later does not rewrite the open row.
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="G", level="SILVER")),
        metadata=brand.admin,
    )
    await record(api, brand, sale("T-G2", "1000", member="G"))
    again = await progress(api, brand, member="G")
    assert (again.level, again.target_value.value, again.achieved_value.value) == (
        "GOLD",
        "20000",
        "6000",
    )


async def test_idempotent_ingestion(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    await record(api, brand, sale("T1", "4000"))
    again = await record(api, brand, sale("T1", "4000.00"))  # same content, other spelling
    assert again.outcome == ppb.RECORD_OUTCOME_DUPLICATE and not again.progress
    conflict = await fails(record(api, brand, sale("T1", "4001")))
    assert conflict.code is grpc.StatusCode.ALREADY_EXISTS
    assert conflict.reason == "TRANSACTION_CONFLICT"
    assert (await progress(api, brand)).achieved_value.value == "4000"


async def test_concurrent_duplicate_deliveries_count_once(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    results = await asyncio.gather(
        *(record(api, brand, sale("SAME", "250")) for _ in range(20)),
        *(record(api, brand, sale(f"U{i}", "10")) for i in range(20)),
    )
    outcomes = [r.outcome for r in results[:20]]
    assert outcomes.count(ppb.RECORD_OUTCOME_ACCEPTED) == 1
    assert outcomes.count(ppb.RECORD_OUTCOME_DUPLICATE) == 19
    assert (await progress(api, brand)).achieved_value.value == "450"


async def test_refusals_name_the_field_and_the_reason(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001", "M-002")
    await record(
        api, brand, sale("S-1", "100", lines=[line("60", sku="A", qty="2"), line("40", sku="B")])
    )
    cases = [
        (
            sale("X1", "1", member="NOBODY"),
            "UNKNOWN_MEMBER",
            {"transaction.member_id": "unknown member 'NOBODY'"},
        ),
        (
            refund("X2", "NOPE", "1"),
            "UNKNOWN_ORIGINAL",
            {"transaction.original_transaction_id": "no sale 'NOPE' has been recorded"},
        ),
        (
            refund("X3", "S-1", "1", member="M-002"),
            "OTHER_MEMBER",
            {"transaction.original_transaction_id": "sale 'S-1' belongs to another member"},
        ),
        (
            refund("X4", "S-1", "61", sku="A"),
            "RETURN_EXCEEDS_SALE",
            {
                "transaction.lines[0].amount": "cannot return more than was sold: "
                "amount 61 of SKU 'A' returned but only 60 is left"
            },
        ),
        (
            refund("X5", "S-1", "1", sku="Z"),
            "RETURN_EXCEEDS_SALE",
            {"transaction.lines[0].sku": "SKU 'Z' is not in the original transaction"},
        ),
        (
            sale("X6", "1", when=datetime.now(UTC) + timedelta(days=400)),
            "INVALID_ARGUMENT",
            {"transaction.occurred_time": "is in the future"},
        ),
    ]
    for txn, reason, violations in cases:
        failure = await fails(record(api, brand, txn))
        assert failure.code is grpc.StatusCode.INVALID_ARGUMENT, (txn.id, failure)
        assert (failure.reason, failure.violations) == (reason, violations), txn.id
    bad_shape = ppb.Transaction(
        id="",
        member_id="M-001",
        type=ppb.TRANSACTION_TYPE_SALE,
        lines=[ppb.TransactionLine(sku="", quantity=D("-1"), amount=D("1,5"))],
    )
    failure = await fails(record(api, brand, bad_shape))
    assert failure.violations == {
        "transaction.occurred_time": "is required",
        "transaction.lines[0].quantity": "must not be negative",
        "transaction.lines[0].amount.value": "'1,5' is not a decimal number like 1234.50",
    }
    failure = await fails(
        record(
            api,
            brand,
            ppb.Transaction(
                id="", member_id="M-001", occurred_time=ts(NOV_15), type=ppb.TRANSACTION_TYPE_SALE
            ),
        )
    )
    assert failure.violations == {
        "transaction.id": "is required",
        "transaction.lines": "at least one line is required",
    }
    assert (await progress(api, brand)).achieved_value.value == "100"  # nothing else counted


async def test_partial_and_full_returns_reduce_every_kpi(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    target = tpb.Target(
        code="MIX",
        criteria=[
            tpb.Criterion(id="count", kpi=typ.KPI_TRANSACTION_COUNT, target_value=D("10")),
            tpb.Criterion(id="visits", kpi=typ.KPI_VISIT_COUNT, target_value=D("5")),
            tpb.Criterion(id="cats", kpi=typ.KPI_DISTINCT_CATEGORIES, target_value=D("4")),
            tpb.Criterion(
                id="qty",
                kpi=typ.KPI_SKU_QUANTITY,
                target_value=D("100"),
                filter=tpb.CriterionFilter(skus=["OIL"]),
            ),
            tpb.Criterion(
                id="big",
                kpi=typ.KPI_TRANSACTION_COUNT,
                target_value=D("5"),
                filter=tpb.CriterionFilter(min_transaction_amount=D("10")),
            ),
        ],
        period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date="2026-01-01"),
    )
    await setup(api, brand, target)
    await record(
        api,
        brand,
        sale(
            "A",
            "",
            store="S1",
            lines=[
                line("12", sku="OIL", qty="5", category="fuel"),
                line("3", sku="GUM", category="snack"),
            ],
        ),
    )
    await record(
        api,
        brand,
        sale("B", "", store="S2", lines=[line("8", sku="OIL", qty="2", category="fuel")]),
    )

    async def achieved() -> dict[str, str]:
        p = await progress(api, brand, target="MIX")
        return {c.criterion_id: c.achieved_value.value for c in p.criteria}

    assert await achieved() == {"count": "2", "visits": "2", "cats": "2", "qty": "7", "big": "1"}
    # A partial return drops A under the $10 minimum and removes the snack category.
    await record(api, brand, refund("RA", "A", "3", sku="GUM", qty="1"))
    assert await achieved() == {"count": "2", "visits": "2", "cats": "1", "qty": "7", "big": "1"}
    await record(api, brand, refund("RA2", "A", "5", sku="OIL", qty="1"))
    assert await achieved() == {"count": "2", "visits": "2", "cats": "1", "qty": "6", "big": "0"}
    # B fully returned: it no longer counts, nor does its visit.
    await record(api, brand, refund("RB", "B", "8", sku="OIL", qty="2"))
    assert await achieved() == {"count": "1", "visits": "1", "cats": "1", "qty": "4", "big": "0"}


async def test_stream_records_batches_with_a_summary(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())

    async def messages() -> AsyncIterator[ppb.RecordTransactionsRequest]:
        yield ppb.RecordTransactionsRequest(transactions=[sale(f"S{i}", "100") for i in range(50)])
        yield ppb.RecordTransactionsRequest(
            transactions=[
                sale("S0", "100"),  # duplicate
                sale("S1", "999"),  # conflict
                sale("S50", "100", member="GHOST"),  # unknown member
                ppb.Transaction(id="BAD", member_id="M-001"),  # malformed
                sale("S51", "50"),
                sale("BAD2", "1.5.5"),  # malformed too, for its own reason alone
            ]
        )

    summary = await api.progress.RecordTransactions(messages(), metadata=brand.admin)
    assert (summary.accepted, summary.duplicate, summary.refused) == (51, 1, 4)
    assert [(r.index, r.transaction_id, r.reason) for r in summary.refusals] == [
        (51, "S1", "TRANSACTION_CONFLICT"),
        (52, "S50", "UNKNOWN_MEMBER"),
        (53, "BAD", "INVALID_ARGUMENT"),
        (55, "BAD2", "INVALID_ARGUMENT"),
    ]
    assert summary.refusals[1].field == "member_id"
    assert summary.refusals[3].message == (
        "transaction.lines[0].amount.value: '1.5.5' is not a decimal number like 1234.50"
    )
    assert summary.refusals[3].field == "lines[0].amount.value"
    assert "type" in summary.refusals[2].message
    assert (await progress(api, brand)).achieved_value.value == "5050"


async def test_member_card_and_leaderboard(api: Api, brand: Brand, clock: FakeClock) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001", "M-002", "M-003", "M-004")
    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target("ZZ-SMALL", "100")), metadata=brand.admin
    )
    for member, amount in (
        ("M-001", "9000"),
        ("M-002", "9500"),
        ("M-003", "9000"),
        ("M-004", "100"),
    ):
        await record(api, brand, sale(f"T-{member}", amount, member=member))
    card = await api.progress.ListMemberProgress(
        ppb.ListMemberProgressRequest(member_id="M-004"), metadata=brand.admin
    )
    assert [(p.target_code, p.attainment_display, p.colour) for p in card.progress] == [
        ("NOV-SALES", "1.00", typ.COLOUR_RED),
        ("ZZ-SMALL", "100.00", typ.COLOUR_GREEN),
    ]
    ranks: list[tuple[int, str]] = []
    token = ""
    while True:
        page = await api.progress.ListProgress(
            ppb.ListProgressRequest(target_code="NOV-SALES", page_size=2, page_token=token),
            metadata=brand.admin,
        )
        assert page.total_size == 4
        ranks += [(e.rank, e.progress.member_id) for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert ranks == [(1, "M-002"), (2, "M-001"), (2, "M-003"), (4, "M-004")]


async def test_member_keys_read_only_their_own_progress(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001", "M-002")
    key = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="M-001"), metadata=brand.admin
    )
    mine = await api.progress.GetProgress(
        ppb.GetProgressRequest(member_id="M-001", target_code="NOV-SALES"),
        metadata=auth(key.secret),
    )
    assert mine.progress.member_id == "M-001"
    for call in (
        api.progress.GetProgress(
            ppb.GetProgressRequest(member_id="M-002", target_code="NOV-SALES"),
            metadata=auth(key.secret),
        ),
        api.progress.ListMemberProgress(
            ppb.ListMemberProgressRequest(member_id="M-002"), metadata=auth(key.secret)
        ),
    ):
        assert (await fails(call)).code is grpc.StatusCode.PERMISSION_DENIED
    ingest = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_INGEST), metadata=brand.admin
    )
    accepted = await api.progress.RecordTransaction(
        ppb.RecordTransactionRequest(transaction=sale("I-1", "5")), metadata=auth(ingest.secret)
    )
    assert accepted.outcome == ppb.RECORD_OUTCOME_ACCEPTED


async def test_other_brands_cannot_record_for_or_read_our_members(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    await record(api, brand, sale("MINE", "10"))
    other = await api.new_brand()
    refused = await fails(record(api, other, sale("THEIRS", "10")))
    assert refused.reason == "UNKNOWN_MEMBER"
    hidden = await fails(progress(api, other))
    assert hidden.code is grpc.StatusCode.NOT_FOUND
    board = await fails(
        api.progress.ListProgress(
            ppb.ListProgressRequest(target_code="NOV-SALES"), metadata=other.admin
        )
    )
    assert board.code is grpc.StatusCode.NOT_FOUND
    # The same transaction id in another brand is another transaction.
    await setup(api, other, monthly_target())
    same_id = await record(api, other, sale("MINE", "99"))
    assert same_id.outcome == ppb.RECORD_OUTCOME_ACCEPTED
    assert (await progress(api, brand)).achieved_value.value == "10"


async def test_watch_sends_the_state_then_every_change(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    stream: Any = api.progress.WatchProgress(
        ppb.WatchProgressRequest(member_id="M-001"), metadata=brand.admin
    )
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.progress.achieved_value.value == "0"
    await record(api, brand, sale("W1", "4000"))
    second = await asyncio.wait_for(stream.read(), 10)
    assert (second.progress.achieved_value.value, second.progress.version) == ("4000", 1)
    await record(api, brand, sale("W2", "5500"))
    third = await asyncio.wait_for(stream.read(), 10)
    assert third.progress.attainment_display == "95.00"
    stream.cancel()
    await asyncio.sleep(0.05)
    assert api.app.hub.subscriber_count == 0


@pytest.mark.parametrize("cycle", ["2026-13", "1999-01"])
async def test_get_progress_checks_the_cycle_name(
    api: Api, brand: Brand, clock: FakeClock, cycle: str
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    failure = await fails(progress(api, brand, cycle=cycle))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT and "cycle" in failure.violations


async def test_sales_on_either_side_of_local_midnight_land_in_their_own_cycles(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """31 Oct 23:59:59 and 1 Nov 00:00:00 in Jakarta (UTC+7): 16:59:59 and 17:00:00 UTC."""
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    target = await api.targets.GetTarget(
        tpb.GetTargetRequest(code="NOV-SALES"), metadata=brand.admin
    )
    assert target.target.offset_days == 0
    # October is closed by now, so give the target 20 grace days for this test.
    await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(
            target=tpb.Target(code="NOV-SALES", offset_days=20),
            update_mask=FieldMask(paths=["offset_days"]),
        ),
        metadata=brand.admin,
    )
    await record(
        api, brand, sale("LAST", "1", when=datetime(2026, 10, 31, 23, 59, 59, tzinfo=JAKARTA))
    )
    await record(
        api, brand, sale("FIRST", "2", when=datetime(2026, 11, 1, 0, 0, 0, tzinfo=JAKARTA))
    )
    october = await progress(api, brand, cycle="2026-10")
    november = await progress(api, brand, cycle="2026-11")
    assert (october.achieved_value.value, november.achieved_value.value) == ("1", "2")
    assert october.cycle_state == typ.CYCLE_STATE_GRACE


async def test_a_late_sale_counts_where_the_cycle_is_open_and_says_where_not(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target("STRICT"), "M-001")
    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target("LENIENT", offset_days=30)),
        metadata=brand.admin,
    )
    late = await record(api, brand, sale("OCT", "10", when=datetime(2026, 10, 20, tzinfo=JAKARTA)))
    assert [(p.target_code, p.cycle) for p in late.progress] == [("LENIENT", "2026-10")]
    assert [(n.target_code, n.cycle, n.reason) for n in late.not_counted] == [
        ("STRICT", "2026-10", "CYCLE_CLOSED")
    ]
