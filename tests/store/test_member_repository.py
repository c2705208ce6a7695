"""The members repository on both databases: upserts, single reads, existence and pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from attain_server.domain.model import Member
from attain_server.store import brands, members
from attain_server.store.engine import Database
from support import migrated

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


async def _brand(db: Database) -> str:
    code = f"M{uuid.uuid4().hex[:12].upper()}"
    async with db.write() as s:
        await brands.insert_brand(s, code=code, display_name="", time_zone="UTC", create_time=NOW)
    return code


async def test_an_upsert_inserts_then_replaces_and_keeps_the_create_time(
    database_url: str,
) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        later = NOW + timedelta(days=1)
        async with db.write() as s:
            made = await members.upsert_member(
                s, brand=brand, member=Member("M-1", "Ann", "GOLD", ("north",)), now=NOW
            )
        async with db.write() as s:
            again = await members.upsert_member(
                s, brand=brand, member=Member("M-1", "Ann B", "", ("south", "east")), now=later
            )
        assert made == Member("M-1", "Ann", "GOLD", ("north",), NOW, NOW)
        assert again == Member("M-1", "Ann B", "", ("south", "east"), NOW, later)
        async with db.read() as s:
            assert await members.find_member(s, brand=brand, external_id="M-1") == again
            assert await members.find_member(s, brand=brand, external_id="M-2") is None
            seen = await members.load_members_by_id(s, brand, ["M-1", "M-2"])
        assert list(seen) == ["M-1"]
        assert (seen["M-1"].level, seen["M-1"].groups) == ("", ("south", "east"))


async def _many_members(db: Database, brand: str) -> None:
    """1,200 members, more than one chunk of a group scan: every tenth GOLD, odd numbers in
    group "odd", the last fifty in group "tail"."""
    async with db.write() as s:
        for i in range(1200):
            groups: tuple[str, ...] = ("odd",) if i % 2 else ()
            groups += ("tail",) if i >= 1150 else ()
            level = "GOLD" if i % 10 == 0 else ""
            member = Member(f"M-{i:04}", "", level, groups)
            await members.upsert_member(s, brand=brand, member=member, now=NOW)


async def test_existing_ids_and_pages_by_level_and_group(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        await _many_members(db, brand)
        async with db.read() as s:
            asked = [f"M-{i:04}" for i in range(0, 1500, 7)] + ["nobody"]
            ids = await members.existing_member_ids(s, brand=brand, ids=asked)
            gold = await members.list_members_after(
                s, brand=brand, after=None, limit=3, level="GOLD"
            )
            odd = await members.list_members_after(
                s, brand=brand, after="M-0100", limit=4, group="odd"
            )
            tail = await members.list_members_after(
                s, brand=brand, after=None, limit=3, group="tail"
            )
            plain = await members.list_members_after(s, brand=brand, after="M-1197", limit=5)
        assert ids == {f"M-{i:04}" for i in range(0, 1200, 7)}
        assert [m.external_id for m in gold] == ["M-0000", "M-0010", "M-0020"]
        assert [m.external_id for m in odd] == ["M-0101", "M-0103", "M-0105", "M-0107"]
        assert [m.external_id for m in tail] == ["M-1150", "M-1151", "M-1152"]
        assert [m.external_id for m in plain] == ["M-1198", "M-1199"]
