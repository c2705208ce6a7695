"""The clock's failures stay where they happen: a held cycle, not a lost tick.

One brand's odd target (a period outside the calendar, a rule whose close passes the most one
award may carry) holds that target or cycle, with a reason its brand reads in ListCycles,
while every other cycle of the same tick, of that brand and of others, opens and closes.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application import cycles
from attain_server.domain.model import PercentageSpec, PerXSpec, RewardRule, TargetDefinition
from attain_server.domain.rewards import MAX_POINTS
from attain_worker import clock as cycle_clock
from conftest import Api, Brand, FakeClock
from support import (
    D,
    amount_target,
    auth,
    fails,
    monthly_target,
    record,
    sale,
    setup,
    stored_target,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
TEN_PERCENT = tpb.RewardRule(id="pct", percentage=tpb.PercentageRule(percent=D("10")))


def at(y: int, m: int, d: int, h: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=JAKARTA)


def greedy(code: str = "GREEDY") -> TargetDefinition:
    """Monthly from 2026-10: 9,999,999,999,999,999,999,999,999,999% of the amount at close."""
    huge = RewardRule("greed", PercentageSpec(Decimal("9999999999999999999999999999")))
    return dataclasses.replace(amount_target(code, date(2026, 10, 1)), rules=(huge,))


async def cycles_of(api: Api, brand: Brand, target: str, size: int = 3) -> list[typ.Cycle]:
    response = await api.targets.ListCycles(
        tpb.ListCyclesRequest(target_code=target, page_size=size), metadata=brand.admin
    )
    return list(response.cycles)


async def awards_of(api: Api, brand: Brand) -> list[tuple[str, str, str, int]]:
    listed = await api.rewards.ListAwards(rpb.ListAwardsRequest(), metadata=brand.admin)
    return [(a.target_code, a.cycle, a.member_id, a.points) for a in listed.awards]


async def test_odd_targets_are_held_while_the_rest_of_the_tick_closes(
    api: Api, clock: FakeClock
) -> None:
    a, b = await api.new_brand(), await api.new_brand()
    for brand in (a, b):
        await setup(api, brand, monthly_target("GOOD", start="2026-10-01", rules=[TEN_PERCENT]))
    await stored_target(api.app.db, a.code, amount_target("ODD", date(1, 1, 1)))
    await stored_target(api.app.db, a.code, greedy())
    clock.set(at(2026, 11, 20))
    for brand in (a, b):
        await record(api, brand, sale("T1", "5000", when=at(2026, 11, 20)))

    with capture_logs() as logs:
        done = await cycle_clock.tick(api.app, at(2026, 12, 1), only=[a.code, b.code])

    closed = {(t.brand, t.target, t.cycle) for t in done if t.state == "CLOSED"}
    assert closed == {
        (b.code, "GOOD", "2026-10"),
        (b.code, "GOOD", "2026-11"),
        (a.code, "GOOD", "2026-10"),
        (a.code, "GOOD", "2026-11"),
        (a.code, "GREEDY", "2026-10"),  # nobody sold in it: nothing too large to give
    }
    opened = {(t.brand, t.target, t.cycle) for t in done if t.state == "OPEN"}
    assert {(b.code, "GOOD", "2026-12"), (a.code, "GREEDY", "2026-12")} <= opened
    for brand in (a, b):  # 10% of 5,000, in both brands, and nothing from GREEDY
        assert await awards_of(api, brand) == [("GOOD", "2026-11", "M-001", 500)]

    clock.set(at(2026, 12, 1, 1))
    shown = await cycles_of(api, a, "GREEDY")
    assert [(c.name, c.state) for c in shown] == [
        ("2026-12", typ.CYCLE_STATE_OPEN),
        ("2026-11", typ.CYCLE_STATE_HELD),
        ("2026-10", typ.CYCLE_STATE_CLOSED),
    ]
    reason = shown[1].hold_reason
    assert "'M-001'" in reason and f"{MAX_POINTS:,} points one award may carry" in reason
    assert "Traceback" not in reason and not shown[1].HasField("close_time")
    assert shown[2].HasField("close_time") and not shown[2].hold_reason
    good = await cycles_of(api, a, "GOOD")
    assert [c.state for c in good] == [
        typ.CYCLE_STATE_OPEN,
        typ.CYCLE_STATE_CLOSED,
        typ.CYCLE_STATE_CLOSED,
    ]
    odd = await fails(
        api.targets.ListCycles(tpb.ListCyclesRequest(target_code="ODD"), metadata=a.admin)
    )
    assert odd.code is grpc.StatusCode.FAILED_PRECONDITION and odd.reason == "TARGET_UNUSABLE"
    assert "0001-01-01" in odd.message and "update its period" in odd.message

    held = await cycles.cycle_holds(db=api.app.db, brand=a.code)
    assert set(held) == {("ODD", ""), ("GREEDY", "2026-11")}
    hold = held[("GREEDY", "2026-11")]
    assert hold.attempts == 1 and hold.reason == reason
    assert hold.first_failure_time == hold.last_failure_time == at(2026, 12, 1)
    assert hold.next_attempt_time > at(2026, 12, 1)
    assert await cycles.cycle_holds(db=api.app.db, brand=b.code) == {}
    logged = [e for e in logs if e["event"] == "cycle held"]
    assert {(e["brand"], e["target"], e["cycle"]) for e in logged} == {
        (a.code, "ODD", ""),
        (a.code, "GREEDY", "2026-11"),
    }
    assert all(e["reason"] and e["log_level"] == "warning" for e in logged)


async def test_a_held_cycle_backs_off_and_closes_once_its_target_is_fixed(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """Still reachable through the API: the largest percent on a large enough sale."""
    rule = tpb.RewardRule(id="pct", percentage=tpb.PercentageRule(percent=D("1000000")))
    target = monthly_target("BIG", start="2026-11-01", rules=[rule])
    await setup(api, brand, target, "M-001", "M-002")
    clock.set(at(2026, 11, 20))
    await record(api, brand, sale("T1", "1000000000", when=at(2026, 11, 20)))  # 10^13 points
    await record(api, brand, sale("T2", "0.01", when=at(2026, 11, 20), member="M-002"))

    async def tick(now: datetime) -> list[tuple[str, str]]:
        clock.set(now)
        done = await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, now)
        return [(t.cycle, t.state) for t in done]

    async def attempts() -> int:
        held = await cycles.cycle_holds(db=api.app.db, brand=brand.code)
        return held[("BIG", "2026-11")].attempts if held else 0

    def counted(name: str) -> float:
        """The brand's count in this process's Prometheus metric ``name``."""
        return REGISTRY.get_sample_value(f"{name}_total", {"brand": brand.code}) or 0.0

    midnight = at(2026, 12, 1)
    assert await tick(midnight) == [("2026-11", "OPEN"), ("2026-12", "OPEN")]
    assert await attempts() == 1
    assert (await cycles_of(api, brand, "BIG"))[1].state == typ.CYCLE_STATE_HELD
    # The reason names M-001 and its sales: another member sees that it is held, not why.
    key = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="M-002"), metadata=brand.admin
    )
    seen = await api.targets.ListCycles(
        tpb.ListCyclesRequest(target_code="BIG", page_size=3), metadata=auth(key.secret)
    )
    assert "M-001" in (await cycles_of(api, brand, "BIG"))[1].hold_reason
    assert [(c.state, c.hold_reason) for c in seen.cycles][1] == (typ.CYCLE_STATE_HELD, "")
    assert await tick(midnight + timedelta(seconds=30)) == []  # within the backoff: not tried
    assert await attempts() == 1
    assert await tick(midnight + timedelta(seconds=61)) == []  # tried again, failed again
    assert await attempts() == 2
    assert (counted("attain_cycle_holds"), counted("attain_cycle_releases")) == (2, 0)
    assert await awards_of(api, brand) == []  # the failing chunk wrote nothing, M-002's neither

    # The admin caps the rule: the new version is tried at once, backoff or not.
    rule.cap_points = 5000
    await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(
            target=tpb.Target(code="BIG", rules=[rule]), update_mask=FieldMask(paths=["rules"])
        ),
        metadata=brand.admin,
    )
    with capture_logs() as logs:
        # Within the second backoff (two minutes), but the target changed.
        assert await tick(midnight + timedelta(seconds=62)) == [("2026-11", "CLOSED")]
    assert await cycles.cycle_holds(db=api.app.db, brand=brand.code) == {}
    assert [e["cycle"] for e in logs if e["event"] == "cycle released"] == ["2026-11"]
    assert (counted("attain_cycle_holds"), counted("attain_cycle_releases")) == (2, 1)
    assert sorted(await awards_of(api, brand)) == [
        ("BIG", "2026-11", "M-001", 5000),
        ("BIG", "2026-11", "M-002", 100),
    ]
    shown = await cycles_of(api, brand, "BIG")
    assert [(c.name, c.state, c.hold_reason) for c in shown] == [
        ("2026-12", typ.CYCLE_STATE_OPEN, ""),
        ("2026-11", typ.CYCLE_STATE_CLOSED, ""),
    ]
    assert await tick(at(2026, 12, 1, 2)) == []  # closed once


async def test_a_stored_target_fixed_by_update_is_released(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    await setup(api, brand, monthly_target("GOOD", start="2026-11-01"))
    await stored_target(api.app.db, brand.code, amount_target("ODD", date(9999, 12, 31)))
    assert await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, at(2026, 11, 2)) == [
        cycle_clock.Transition(brand.code, "GOOD", "2026-11", "OPEN")
    ]
    held = await cycles.cycle_holds(db=api.app.db, brand=brand.code)
    assert list(held) == [("ODD", "")] and "9999-12-31" in held[("ODD", "")].reason

    fixed = tpb.Target(
        code="ODD", period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date="2026-11-01")
    )
    await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(target=fixed, update_mask=FieldMask(paths=["period"])),
        metadata=brand.admin,
    )
    done = await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, at(2026, 11, 2, 0, 1))
    assert [(t.target, t.cycle, t.state) for t in done] == [("ODD", "2026-11", "OPEN")]
    assert await cycles.cycle_holds(db=api.app.db, brand=brand.code) == {}


async def test_list_cycles_says_closing_until_the_close_happened(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    await setup(api, brand, monthly_target("GOOD", start="2026-10-01", rules=[TEN_PERCENT]))
    clock.set(at(2026, 11, 20))
    await record(api, brand, sale("T1", "100", when=at(2026, 11, 20)))
    clock.set(at(2026, 12, 1, 0, 0))  # November's time is over; the clock has not come round
    assert [(c.name, c.state) for c in await cycles_of(api, brand, "GOOD")] == [
        ("2026-12", typ.CYCLE_STATE_OPEN),
        ("2026-11", typ.CYCLE_STATE_CLOSING),
        ("2026-10", typ.CYCLE_STATE_CLOSING),
    ]
    await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, at(2026, 12, 1, 0, 0))
    shown = await cycles_of(api, brand, "GOOD")
    assert [(c.name, c.state) for c in shown] == [
        ("2026-12", typ.CYCLE_STATE_OPEN),
        ("2026-11", typ.CYCLE_STATE_CLOSED),
        ("2026-10", typ.CYCLE_STATE_CLOSED),
    ]
    assert shown[1].close_time.ToDatetime(tzinfo=UTC) == at(2026, 12, 1)


async def test_an_unexpected_failure_is_held_with_a_generic_reason_and_logged_in_full(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """A PER_X rule counting in steps of 0 (stored before `every` had to be positive)."""
    broken = RewardRule("zero", PerXSpec(Decimal(0), 1))
    await stored_target(
        api.app.db,
        brand.code,
        dataclasses.replace(amount_target("ZERO", date(2026, 11, 1)), rules=(broken,)),
    )
    await setup(api, brand, monthly_target("GOOD", start="2026-11-01", rules=[TEN_PERCENT]))
    clock.set(at(2026, 11, 20))
    await record(api, brand, sale("T1", "100", when=at(2026, 11, 20)))
    with capture_logs() as logs:
        await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, at(2026, 12, 1))

    clock.set(at(2026, 12, 1, 1))
    held = (await cycles_of(api, brand, "ZERO"))[1]
    assert held.state == typ.CYCLE_STATE_HELD
    assert held.hold_reason == (
        "the clock could not close cycle 2026-11 (DivisionByZero); it tries again later, "
        "and the server log has the details"
    )
    assert (await cycles_of(api, brand, "GOOD"))[1].state == typ.CYCLE_STATE_CLOSED
    [logged] = [e for e in logs if e["event"] == "cycle held"]
    assert logged["log_level"] == "error" and logged["target"] == "ZERO"
    assert type(logged["exc_info"]).__name__ == "DivisionByZero"
