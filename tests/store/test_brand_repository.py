"""The brands repository on both databases: brands, programs and API keys in, domain values out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from attain_server.domain.model import Program, Role
from attain_server.store import brands
from attain_server.store.errors import Conflict
from support import migrated

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _code() -> str:
    return f"B{uuid.uuid4().hex[:12].upper()}"


async def test_a_brand_is_inserted_once_found_and_renamed(database_url: str) -> None:
    code = _code()
    async with migrated(database_url) as db:
        async with db.write() as s:
            made = await brands.insert_brand(
                s, code=code, display_name="Acme", time_zone="Asia/Jakarta", create_time=NOW
            )
        assert (made.code, made.display_name, made.time_zone) == (code, "Acme", "Asia/Jakarta")
        with pytest.raises(Conflict):
            async with db.write() as s:
                await brands.insert_brand(
                    s, code=code, display_name="", time_zone="UTC", create_time=NOW
                )
        async with db.write() as s:
            renamed = await brands.rename_brand(s, code=code, display_name="Acme Ltd")
            assert await brands.rename_brand(s, code=_code(), display_name="x") is None
        assert renamed is not None and renamed.display_name == "Acme Ltd"
        async with db.read() as s:
            found = await brands.find_brand(s, code=code)
            assert await brands.find_brand(s, code=_code()) is None
        assert found == renamed
        assert found.create_time == NOW


async def test_keys_are_listed_in_id_order_revoked_once_and_found_by_hash(
    database_url: str,
) -> None:
    code = _code()
    async with migrated(database_url) as db:
        async with db.write() as s:
            await brands.insert_brand(
                s, code=code, display_name="", time_zone="UTC", create_time=NOW
            )
            for key_id in ("c0", "a0", "b0"):
                key = await brands.insert_api_key(
                    s,
                    brand=code,
                    key_id=key_id,
                    secret_hash=f"{code}-{key_id}",
                    role=Role.MEMBER if key_id == "b0" else Role.INGEST,
                    member_id="M-1" if key_id == "b0" else "",
                    label=key_id.upper(),
                    create_time=NOW,
                )
                assert key.key_id == key_id and key.revoke_time is None
        async with db.read() as s:
            first = await brands.list_api_keys_after(s, brand=code, after=None, limit=2)
            rest = await brands.list_api_keys_after(s, brand=code, after="a0", limit=5)
        assert [k.key_id for k in first] == ["a0", "b0"]
        assert [k.key_id for k in rest] == ["b0", "c0"]
        assert (rest[0].role, rest[0].member_id, rest[0].label) == (Role.MEMBER, "M-1", "B0")

        async with db.write() as s:
            revoked = await brands.revoke_api_key(s, brand=code, key_id="a0", revoke_time=NOW)
        async with db.write() as s:
            again = await brands.revoke_api_key(
                s, brand=code, key_id="a0", revoke_time=NOW + timedelta(hours=1)
            )
            assert await brands.revoke_api_key(s, brand=code, key_id="zz", revoke_time=NOW) is None
        assert revoked is not None and again is not None
        assert revoked.revoke_time == again.revoke_time == NOW  # the first revocation stays

        async with db.read() as s:
            holder = await brands.find_api_key_by_secret_hash(s, secret_hash=f"{code}-c0")
            assert await brands.find_api_key_by_secret_hash(s, secret_hash="nope") is None
        assert holder is not None
        assert (holder.brand, holder.key.key_id, holder.key.role) == (code, "c0", Role.INGEST)


async def test_programs_keep_one_default(database_url: str) -> None:
    code = _code()
    async with migrated(database_url) as db:
        async with db.write() as s:
            await brands.insert_brand(
                s, code=code, display_name="", time_zone="UTC", create_time=NOW
            )
            made = await brands.insert_program(
                s, brand=code, program=Program("POINTS", "", True), create_time=NOW
            )
            await brands.insert_program(
                s, brand=code, program=Program("STARS", "Stars", False), create_time=NOW
            )
        assert made == Program("POINTS", "POINTS", True, NOW)  # the code names it by default
        with pytest.raises(Conflict):  # a second default
            async with db.write() as s:
                await brands.insert_program(
                    s, brand=code, program=Program("MILES", "", True), create_time=NOW
                )
        async with db.write() as s:
            updated = await brands.update_program(
                s, brand=code, code="STARS", display_name="Gold stars", make_default=True
            )
            assert (
                await brands.update_program(
                    s, brand=code, code="NONE", display_name=None, make_default=False
                )
                is None
            )
        assert updated == Program("STARS", "Gold stars", True, NOW)
        async with db.read() as s:
            listed = await brands.list_programs_after(s, brand=code, after=None, limit=10)
            after = await brands.list_programs_after(s, brand=code, after="POINTS", limit=10)
            codes = await brands.program_codes_of_brand(s, brand=code)
            points = await brands.find_program(s, brand=code, code="POINTS")
            assert await brands.find_program(s, brand=code, code="MILES") is None
        assert [(p.code, p.is_default) for p in listed] == [("POINTS", False), ("STARS", True)]
        assert [p.code for p in after] == ["STARS"]
        assert codes == {"POINTS", "STARS"}
        assert points == Program("POINTS", "POINTS", False, NOW)
