"""The targets repository on both databases: versioned definitions and per-member values."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from attain_server.domain.model import TargetState, TargetValue
from attain_server.store import brands, targets
from attain_server.store.engine import Database
from attain_server.store.errors import Conflict
from attain_server.store.targets import TargetValueKey
from support import amount_target, migrated

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


async def _brand(db: Database) -> str:
    code = f"T{uuid.uuid4().hex[:12].upper()}"
    async with db.write() as s:
        await brands.insert_brand(s, code=code, display_name="", time_zone="UTC", create_time=NOW)
    return code


async def test_a_target_is_versioned_by_replacements_and_archiving(database_url: str) -> None:
    later = NOW + timedelta(hours=1)
    definition = amount_target("SALES", date(2026, 11, 1))
    async with migrated(database_url) as db:
        brand = await _brand(db)
        async with db.write() as s:
            made = await targets.insert_target(s, brand=brand, definition=definition, now=NOW)
        assert (made.definition, made.state, made.version) == (definition, TargetState.ACTIVE, 1)
        with pytest.raises(Conflict):
            async with db.write() as s:
                await targets.insert_target(s, brand=brand, definition=definition, now=NOW)

        renamed = dataclasses.replace(definition, display_name="Sales")
        async with db.write() as s:
            replaced = await targets.replace_target_definition(
                s, brand=brand, code="SALES", definition=renamed, version=1, now=later
            )
            stale = await targets.replace_target_definition(
                s, brand=brand, code="SALES", definition=definition, version=1, now=later
            )
        assert stale is None  # another writer's version 2 is not overwritten
        assert replaced is not None
        assert (replaced.definition, replaced.version) == (renamed, 2)
        assert (replaced.create_time, replaced.update_time) == (NOW, later)

        async with db.write() as s:
            archived = await targets.archive_target(s, brand=brand, code="SALES", now=later)
            twice = await targets.archive_target(s, brand=brand, code="SALES", now=later)
            assert await targets.archive_target(s, brand=brand, code="NONE", now=later) is None
        assert archived is not None and twice is not None
        assert (archived.state, archived.version, twice.version) == (TargetState.ARCHIVED, 3, 3)
        async with db.read() as s:
            assert await targets.find_target(s, brand=brand, code="SALES") == archived
            assert await targets.find_target(s, brand=brand, code="NONE") is None


async def test_targets_are_listed_by_code_active_unless_asked(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        async with db.write() as s:
            for code in ("C", "A", "B", "D"):
                definition = amount_target(code, date(2026, 11, 1))
                await targets.insert_target(s, brand=brand, definition=definition, now=NOW)
            await targets.archive_target(s, brand=brand, code="B", now=NOW)
        async with db.read() as s:
            active = await targets.list_targets_after(
                s, brand=brand, after=None, limit=10, show_archived=False
            )
            every = await targets.list_targets_after(
                s, brand=brand, after="A", limit=2, show_archived=True
            )
        assert [t.code for t in active] == ["A", "C", "D"]
        assert [t.code for t in every] == ["B", "C"]


async def test_values_are_upserted_read_by_cycle_and_paged(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        first = [
            TargetValue(m, "SALES", cy, "c1", Decimal("100.50"))
            for cy in ("2026-11", "2026-12")
            for m in ("M-2", "M-1")
        ]
        async with db.write() as s:
            await targets.upsert_target_values(s, brand=brand, values=first, now=NOW)
            await targets.upsert_target_values(s, brand=brand, values=[], now=NOW)
        async with db.write() as s:
            changed = TargetValue("M-1", "SALES", "2026-11", "c1", Decimal("7.25"))
            await targets.upsert_target_values(s, brand=brand, values=[changed], now=NOW)
        async with db.read() as s:
            stored = await targets.stored_target_values(
                s, brand=brand, target_code="SALES", cycle="2026-11", member_ids={"M-1", "M-9"}
            )
            page = await targets.list_target_values_after(
                s, brand=brand, target_code="SALES", cycle="", after=None, limit=3
            )
            after = TargetValueKey("SALES", "2026-11", "M-2", "c1")
            rest = await targets.list_target_values_after(
                s, brand=brand, target_code="SALES", cycle="", after=after, limit=3
            )
            one_cycle = await targets.list_target_values_after(
                s, brand=brand, target_code="SALES", cycle="2026-12", after=None, limit=3
            )
        assert stored == {TargetValueKey("SALES", "2026-11", "M-1", "c1"): Decimal("7.25")}
        assert [(v.cycle, v.member_id, v.value) for v in page] == [
            ("2026-11", "M-1", Decimal("7.25")),
            ("2026-11", "M-2", Decimal("100.50")),
            ("2026-12", "M-1", Decimal("100.50")),
        ]
        assert [(v.cycle, v.member_id) for v in rest] == [("2026-12", "M-1"), ("2026-12", "M-2")]
        assert [v.member_id for v in one_cycle] == ["M-1", "M-2"]
