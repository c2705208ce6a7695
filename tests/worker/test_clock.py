"""The cycle clock: open, grace, close exactly once, on time, catching up after downtime."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import select

from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain_server.application.job_locks import JobLocks
from attain_server.store.tables import ProgressRow
from attain_worker import clock as cycle_clock
from conftest import Api, Brand, FakeClock
from support import D, monthly_target, progress, record, sale, setup

JAKARTA = ZoneInfo("Asia/Jakarta")


def at(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=JAKARTA)


async def tick(api: Api, brand: Brand, now: datetime) -> list[tuple[str, str, str]]:
    api.clock.set(now)
    done = await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, now)
    return [(t.target, t.cycle, t.state) for t in done]


async def test_cycles_open_with_values_then_grace_then_close_once(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    target = monthly_target(
        start="2026-11-01",
        rules=[tpb.RewardRule(percentage=tpb.PercentageRule(percent=D("10")))],
        offset_days=2,
    )
    target.criteria[0].level_target_values["GOLD"].value = "20000"
    await setup(api, brand, target, "M-001")
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="G", level="GOLD")),
        metadata=brand.admin,
    )
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
    assert await tick(api, brand, at(2026, 10, 31, 23)) == []  # not started yet
    assert await tick(api, brand, at(2026, 11, 1, 0)) == [("NOV-SALES", "2026-11", "OPEN")]
    async with api.app.db.read() as s:
        rows = (await s.exec(select(ProgressRow).where(ProgressRow.brand_code == brand.code))).all()
    opened = {r.member_id: (r.level, r.target_values["c1"], r.version) for r in rows}
    assert opened == {"M-001": ("", "12000", 0), "G": ("GOLD", "20000", 0)}
    assert await tick(api, brand, at(2026, 11, 20)) == []  # nothing new mid-cycle
    clock.set(at(2026, 11, 20))
    await record(api, brand, sale("T1", "5000", when=at(2026, 11, 20)))
    assert (await progress(api, brand)).achieved_value.value == "5000"  # counted on the open row
    assert await tick(api, brand, at(2026, 12, 1, 0)) == [
        ("NOV-SALES", "2026-11", "GRACE"),
        ("NOV-SALES", "2026-12", "OPEN"),
    ]
    assert await tick(api, brand, at(2026, 12, 2, 12)) == []  # still in grace
    closing = await tick(api, brand, at(2026, 12, 3, 0))
    assert closing == [("NOV-SALES", "2026-11", "CLOSED")]
    assert await tick(api, brand, at(2026, 12, 3, 1)) == []  # once
    awards = await api.rewards.ListAwards(rpb.ListAwardsRequest(), metadata=brand.admin)
    assert [(a.member_id, a.points) for a in awards.awards] == [("M-001", 500)]


async def test_a_worker_that_was_down_catches_up_in_order(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    rule = tpb.RewardRule(per_x=tpb.PerXRule(every=D("100"), points=1))
    await setup(api, brand, monthly_target(start="2026-08-01", rules=[rule]), "M-001")
    clock.set(at(2026, 8, 10))
    await record(api, brand, sale("AUG", "250", when=at(2026, 8, 10)))
    done = await tick(api, brand, at(2026, 11, 15))
    assert [(c, s) for _, c, s in done] == [
        ("2026-08", "OPEN"),
        ("2026-08", "CLOSED"),
        ("2026-09", "OPEN"),
        ("2026-09", "CLOSED"),
        ("2026-10", "OPEN"),
        ("2026-10", "CLOSED"),
        ("2026-11", "OPEN"),
    ]
    awards = await api.rewards.ListAwards(rpb.ListAwardsRequest(), metadata=brand.admin)
    assert [(a.cycle, a.points) for a in awards.awards] == [("2026-08", 2)]


async def test_a_worker_down_for_over_a_year_catches_up_every_cycle(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """Fifteen months: more than one look back (LOOK_BACK_STEP cycles) finds."""
    await setup(api, brand, monthly_target(start="2025-09-01"), "M-001")
    assert cycle_clock.LOOK_BACK_STEP < 15
    done = await tick(api, brand, at(2026, 11, 15))
    months = [f"2025-{m:02d}" for m in range(9, 13)] + [f"2026-{m:02d}" for m in range(1, 12)]
    assert [(c, s) for _, c, s in done] == [
        *((m, s) for m in months[:-1] for s in ("OPEN", "CLOSED")),
        ("2026-11", "OPEN"),
    ]
    assert await tick(api, brand, at(2026, 11, 16)) == []
    assert await tick(api, brand, at(2026, 12, 1)) == [
        ("NOV-SALES", "2026-11", "CLOSED"),
        ("NOV-SALES", "2026-12", "OPEN"),
    ]


async def test_concurrent_ticks_do_each_transition_once(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    await setup(api, brand, monthly_target(start="2026-09-01"), "M-001")
    now = at(2026, 11, 15)
    clock.set(now)
    results = await asyncio.gather(
        *(cycle_clock.tick_brand(api.app, brand.code, JAKARTA, now) for _ in range(4))
    )
    flat = sorted((t.cycle, t.state) for r in results for t in r)
    assert flat == [
        ("2026-09", "CLOSED"),
        ("2026-09", "OPEN"),
        ("2026-10", "CLOSED"),
        ("2026-10", "OPEN"),
        ("2026-11", "OPEN"),
    ]


async def test_job_locks_let_one_holder_in(api: Api) -> None:
    locks_a, locks_b = JobLocks(api.app.db), JobLocks(api.app.db)
    async with locks_a.hold("sftp:X") as first:
        assert first
        async with locks_b.hold("sftp:X") as second:
            # On PostgreSQL another worker is refused; in one process the same lock is shared
            # per JobLocks, and two JobLocks are two workers only on PostgreSQL.
            if api.app.db.dialect == "postgresql":
                assert not second
        async with locks_a.hold("sftp:X") as again:
            assert not again
    async with locks_b.hold("sftp:X") as later:
        assert later
