"""The cycle repository on both databases: transitions once, holds kept and released."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from attain_server.store import cycles
from attain_server.store.errors import Conflict
from support import brand_with_members, migrated

NOW = datetime(2026, 11, 20, tzinfo=UTC)


async def test_a_transition_is_recorded_once(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"E{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, [], NOW)
        async with db.write() as s:
            for cycle, state in (("2026-10", "OPEN"), ("2026-10", "CLOSED"), ("2026-11", "OPEN")):
                await cycles.add_cycle_event(
                    s, brand=brand, target_code="T", cycle=cycle, state=state, now=NOW
                )
        with pytest.raises(Conflict):
            async with db.write() as s:
                await cycles.add_cycle_event(
                    s, brand=brand, target_code="T", cycle="2026-10", state="OPEN", now=NOW
                )
        async with db.read() as s:
            found = await cycles.recorded_transitions(
                s, brand=brand, target_codes=["T", "U"], cycles=["2026-10"]
            )
            none = await cycles.recorded_transitions(
                s, brand=brand, target_codes=[], cycles=["2026-10"]
            )
        assert found == {("T", "2026-10", "OPEN"), ("T", "2026-10", "CLOSED")}
        assert none == set()


async def test_a_hold_counts_failures_until_it_is_released(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"E{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, [], NOW)
        for attempt in (1, 2):
            async with db.write() as s:
                hold = await cycles.put_hold(
                    s,
                    brand=brand,
                    target_code="T",
                    cycle="2026-10",
                    reason=f"r{attempt}",
                    target_version=1,
                    now=NOW,
                    retry_after=lambda n: timedelta(minutes=n),
                )
            assert (hold.attempts, hold.reason) == (attempt, f"r{attempt}")
            assert hold.next_attempt_time == NOW + timedelta(minutes=attempt)
        async with db.read() as s:
            assert [h.cycle for h in await cycles.brand_holds(s, brand)] == ["2026-10"]
            assert set(await cycles.target_holds(s, brand, "T", ["2026-10", "2026-11"])) == {
                "2026-10"
            }
        async with db.write() as s:
            assert await cycles.delete_hold(s, brand, "T", "2026-10")
            assert not await cycles.delete_hold(s, brand, "T", "2026-10")
