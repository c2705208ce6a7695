"""Brand administration use cases over the directory repositories, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from attain_server.application import brands, members, target_values, targets
from attain_server.application.paging import read_page
from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from attain_server.domain.model import Member, Program, Role, TargetValue
from attain_server.store.engine import Database
from support import amount_target, migrated

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


async def _brand(db: Database) -> str:
    code = f"D{uuid.uuid4().hex[:12].upper()}"
    await brands.create_brand(db=db, code=code, time_zone="Asia/Jakarta", now=NOW)
    return code


async def test_a_new_brand_has_a_default_program_and_an_admin_key(database_url: str) -> None:
    async with migrated(database_url) as db:
        code = f"D{uuid.uuid4().hex[:12].upper()}"
        brand, key, secret = await brands.create_brand(
            db=db, code=code, time_zone="UTC", now=NOW, program_code="STARS"
        )
        assert (brand.code, brand.display_name, key.role) == (code, code, Role.BRAND_ADMIN)
        assert secret.startswith(f"atn_{key.key_id}_")
        assert await brands.get_program(db=db, brand=code, code="STARS") == Program(
            "STARS", "STARS", True, NOW
        )
        with pytest.raises(AlreadyExists, match="already exists"):
            await brands.create_brand(db=db, code=code, time_zone="UTC", now=NOW)
        with pytest.raises(NotFound):
            await brands.get_brand(db=db, brand="NO-SUCH-BRAND")


async def test_programs_change_their_default_and_refuse_duplicates(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        await brands.create_program(
            db=db, brand=brand, program=Program("MILES", "", False), now=NOW
        )
        with pytest.raises(AlreadyExists):
            await brands.create_program(
                db=db, brand=brand, program=Program("MILES", "", False), now=NOW
            )
        made = await brands.update_program(
            db=db, brand=brand, code="MILES", display_name="Air miles", make_default=True
        )
        assert (made.display_name, made.is_default) == ("Air miles", True)
        listed, token = await brands.list_programs(db=db, brand=brand, page=read_page(0, ""))
        assert [(p.code, p.is_default) for p in listed] == [("MILES", True), ("POINTS", False)]
        assert token == ""
        with pytest.raises(InvalidArgument):
            await brands.update_program(
                db=db, brand=brand, code="MILES", display_name=None, make_default=False
            )


async def test_a_member_key_needs_a_member_and_a_revoked_key_stays_revoked(
    database_url: str,
) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        with pytest.raises(InvalidArgument, match="unknown member"):
            await brands.create_api_key(
                db=db, brand=brand, role=Role.MEMBER, member_id="M-1", label="", now=NOW
            )
        _, created = await members.upsert_member(db=db, brand=brand, member=Member("M-1"), now=NOW)
        _, again = await members.upsert_member(
            db=db, brand=brand, member=Member("M-1", level="GOLD"), now=NOW + timedelta(1)
        )
        assert (created, again) == (True, False)
        key, _ = await brands.create_api_key(
            db=db, brand=brand, role=Role.MEMBER, member_id="M-1", label="app", now=NOW
        )
        first = await brands.revoke_api_key(db=db, brand=brand, key_id=key.key_id, now=NOW)
        later = NOW + timedelta(hours=1)
        second = await brands.revoke_api_key(db=db, brand=brand, key_id=key.key_id, now=later)
        assert first.revoke_time == second.revoke_time == NOW


async def test_a_target_update_checks_its_etag_and_state(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        definition = amount_target("SALES", date(2026, 11, 1))
        made = await targets.create_target(db=db, brand=brand, definition=definition, now=NOW)
        with pytest.raises(AlreadyExists):
            await targets.create_target(db=db, brand=brand, definition=definition, now=NOW)
        updated = await targets.update_target(
            db=db,
            brand=brand,
            code="SALES",
            changes={"display_name": "Sales"},
            etag=made.etag,
            now=NOW,
        )
        assert (updated.definition.display_name, updated.etag) == ("Sales", "v2")
        with pytest.raises(Aborted) as stale:
            await targets.update_target(
                db=db, brand=brand, code="SALES", changes={}, etag=made.etag, now=NOW
            )
        assert stale.value.reason == "ETAG_MISMATCH"
        await targets.archive_target(db=db, brand=brand, code="SALES", now=NOW)
        with pytest.raises(FailedPrecondition):
            await targets.update_target(
                db=db, brand=brand, code="SALES", changes={}, etag="", now=NOW
            )


async def test_target_values_are_all_or_none_and_count_what_changed(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = await _brand(db)
        await members.upsert_member(db=db, brand=brand, member=Member("M-1"), now=NOW)
        definition = amount_target("SALES", date(2026, 11, 1))
        await targets.create_target(db=db, brand=brand, definition=definition, now=NOW)
        good = TargetValue("M-1", "SALES", "2026-11", "", Decimal("500"))
        bad = TargetValue("M-9", "SALES", "2026-13", "", Decimal("0"))
        with pytest.raises(InvalidArgument) as refused:
            await target_values.set_target_values(db=db, brand=brand, values=[good, bad], now=NOW)
        assert {v.field for v in refused.value.violations} == {
            "values[1].member_id",
            "values[1].value",
            "values[1].cycle",
        }
        set_twice = [good, TargetValue("M-1", "SALES", "2026-12", "c1", Decimal("600"))]
        first = await target_values.set_target_values(db=db, brand=brand, values=set_twice, now=NOW)
        second = await target_values.set_target_values(
            db=db, brand=brand, values=set_twice, now=NOW
        )
        assert (first, second) == ((2, 0), (0, 2))
        stored, _ = await target_values.list_target_values(
            db=db, brand=brand, target_code="SALES", cycle="", page=read_page(0, "")
        )
        assert [(v.cycle, v.criterion_id, v.value) for v in stored] == [
            ("2026-11", "c1", Decimal("500")),
            ("2026-12", "c1", Decimal("600")),
        ]
