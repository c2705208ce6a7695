"""Cycle clock use cases on both databases: the plan, transitions once, opening rows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from attain_server.application.clock import (
    clock_brands,
    clock_plan,
    open_rows,
    record_transition,
)
from attain_server.domain.model import CycleHold
from attain_server.store.engine import Database
from attain_server.store.tables import ProgressRow
from support import amount_target, brand_with_members, migrated, stored_target

NOW = datetime(2026, 11, 20, tzinfo=UTC)
ZONE = ZoneInfo("UTC")


async def _brand(db: Database, members: list[str]) -> str:
    brand = f"C{uuid.uuid4().hex[:16]}"
    await brand_with_members(db, brand, members, NOW)
    await stored_target(db, brand, amount_target("T", date(2026, 10, 1)))
    return brand


async def test_the_plan_lists_unfinished_cycles_and_what_was_recorded(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db, ["M"])
        assert [b.code for b in await clock_brands(db=db, only=[brand])] == [brand]
        plan = await clock_plan(db=db, brand=brand, zone=ZONE, now=NOW, held={})
        assert [t.code for t in plan.targets] == ["T"]
        assert [w.name for w in plan.windows[0]] == ["2026-10", "2026-11"]
        assert plan.recorded == set() and plan.unusable == []
        assert await record_transition(
            db=db, brand=brand, target_code="T", cycle="2026-10", state="CLOSED", now=NOW
        )
        # Recorded once: a second worker's attempt finds it done.
        assert not await record_transition(
            db=db, brand=brand, target_code="T", cycle="2026-10", state="CLOSED", now=NOW
        )
        plan = await clock_plan(db=db, brand=brand, zone=ZONE, now=NOW, held={})
        assert [w.name for w in plan.windows[0]] == ["2026-11"]
        assert ("T", "2026-10", "CLOSED") in plan.recorded


async def test_a_target_held_as_a_whole_waits_for_its_retry(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db, ["M"])
        later = NOW + timedelta(hours=1)
        hold = CycleHold("T", "", "broken", 1, 1, NOW, NOW, later)
        plan = await clock_plan(db=db, brand=brand, zone=ZONE, now=NOW, held={("T", ""): hold})
        assert plan.targets == []
        plan = await clock_plan(db=db, brand=brand, zone=ZONE, now=later, held={("T", ""): hold})
        assert [t.code for t in plan.targets] == ["T"]


async def test_open_rows_opens_the_audience_once(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db, ["M1", "M2"])
        plan = await clock_plan(db=db, brand=brand, zone=ZONE, now=NOW, held={})
        target, window = plan.targets[0], plan.windows[0][-1]
        for _ in range(2):  # a second opening leaves the rows as they are
            opened = await open_rows(
                db=db, brand=brand, target=target.definition, window=window, now=NOW
            )
            assert opened == 2
        async with db.read() as s:
            rows = (
                await s.execute(
                    select(ProgressRow.member_id)
                    .where(ProgressRow.brand_code == brand, ProgressRow.cycle == window.name)
                    .order_by(col(ProgressRow.member_id))
                )
            ).all()
        assert [r[0] for r in rows] == ["M1", "M2"]
