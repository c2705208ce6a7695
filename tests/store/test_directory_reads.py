"""What a batch reads of brands, members and targets, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from attain_server.domain.model import Member, TargetState
from attain_server.store.brands import brand_zone, read_brand_zone
from attain_server.store.members import load_members_by_id
from attain_server.store.tables import TargetValueRow
from attain_server.store.targets import (
    load_member_target_values,
    load_target_definitions,
    load_target_versions,
)
from support import amount_target, brand_with_members, migrated, stored_target

NOW = datetime(2026, 11, 20, tzinfo=UTC)


async def test_brand_zone_and_members_by_id(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"B{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1", "M2"], NOW, zone="Asia/Jakarta")
        async with db.unit() as s:
            assert await read_brand_zone(s, brand) == ZoneInfo("Asia/Jakarta")
            assert await brand_zone(s, brand) == ZoneInfo("Asia/Jakarta")
            assert await brand_zone(s, f"{brand}-none") is None
            members = await load_members_by_id(s, brand, ["M2", "M9", "M2"])
        assert members == {"M2": Member("M2")}


async def test_target_versions_definitions_and_member_values(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"B{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1"], NOW)
        definition = amount_target("T", date(2026, 11, 1))
        await stored_target(db, brand, definition)
        async with db.write() as s:
            for member, value in (("M1", "50"), ("M2", "75.5")):
                s.add(
                    TargetValueRow(
                        brand_code=brand,
                        target_code="T",
                        cycle="2026-11",
                        member_id=member,
                        criterion_id="c1",
                        value=Decimal(value),
                        update_time=NOW,
                    )
                )
        async with db.unit() as s:
            versions = await load_target_versions(s, brand)
            stored = await load_target_definitions(s, brand, ["T", "U"])
            values = await load_member_target_values(
                s, brand, [("T", "2026-11", "M1"), ("T", "2026-12", "M1")]
            )
        assert [(v.code, v.version, v.state) for v in versions] == [("T", 1, TargetState.ACTIVE)]
        assert [(d.code, d.definition) for d in stored] == [("T", definition)]
        assert values == {("T", "2026-11", "M1"): {"c1": Decimal(50)}}
