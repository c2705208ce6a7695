"""The progress repository: rows written and read back as ProgressState, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from attain_server.domain.kpis import Contribution, Tally
from attain_server.domain.model import Criterion, Kpi
from attain_server.domain.progress import ProgressState, new_state
from attain_server.store.progress import (
    insert_progress_states,
    load_progress_states,
    update_progress_states,
)
from support import amount_target, brand_with_members, migrated

NOW = datetime(2026, 11, 20, tzinfo=UTC)
TARGET = amount_target("T", date(2026, 11, 1))


def _opened(member: str, total: str) -> ProgressState:
    state = new_state(TARGET, ("T", "2026-11", member), "gold", {"c1": Decimal("250.5")})
    state.tallies["c1"].add(Contribution(Decimal(total), frozenset()))
    state.settle(TARGET)
    state.version = 1
    return state


async def test_rows_opened_then_updated_read_back_as_written(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"P{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1", "M2"], NOW)
        async with db.unit() as s:
            await insert_progress_states(
                s, brand=brand, states=[_opened("M1", "10.25"), _opened("M2", "300")], now=NOW
            )
        keys = {("T", "2026-11", "M1"), ("T", "2026-11", "M2"), ("T", "2026-11", "M3")}
        async with db.unit() as s:
            found = await load_progress_states(
                s, brand=brand, keys=keys, targets={"T": TARGET}, lock=True
            )
            assert set(found) == keys - {("T", "2026-11", "M3")}
            m1 = found[("T", "2026-11", "M1")]
            assert (m1.level, m1.target_values, m1.version, m1.is_new) == (
                "gold",
                {"c1": Decimal("250.5")},
                1,
                False,
            )
            assert (m1.tallies["c1"].total, m1.attainment, m1.complete) == (
                Decimal("10.25"),
                _opened("M1", "10.25").attainment,
                False,
            )
            assert found[("T", "2026-11", "M2")].complete
            m1.tallies["c1"].add(Contribution(Decimal("240.25"), frozenset()))
            m1.settle(TARGET)
            m1.version = 2
            # M2's row is at version 1; this state claims to follow a version 2 it never had.
            stale = _opened("M2", "1")
            stale.version = 3
            changed = await update_progress_states(
                s, brand=brand, states=[m1, stale], now=NOW + timedelta(hours=1)
            )
            assert changed == 1
        async with db.unit() as s:
            again = await load_progress_states(
                s, brand=brand, keys=keys, targets={"T": TARGET}, lock=False
            )
        m1 = again[("T", "2026-11", "M1")]
        assert (m1.version, m1.tallies["c1"].total, m1.complete) == (2, Decimal("250.50"), True)
        assert again[("T", "2026-11", "M2")].tallies["c1"].total == Decimal(300)


async def test_a_criterion_added_later_reads_as_zero(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"P{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1"], NOW)
        async with db.unit() as s:
            await insert_progress_states(s, brand=brand, states=[_opened("M1", "5")], now=NOW)
        wider = TARGET.__class__(
            code="T",
            criteria=(*TARGET.criteria, Criterion("c2", Kpi.TRANSACTION_COUNT, Decimal(3))),
            period=TARGET.period,
        )
        async with db.unit() as s:
            found = await load_progress_states(
                s, brand=brand, keys=[("T", "2026-11", "M1")], targets={"T": wider}, lock=False
            )
        state = found[("T", "2026-11", "M1")]
        assert state.tallies["c2"] == Tally()
        assert state.target_values["c2"] == Decimal(3)
