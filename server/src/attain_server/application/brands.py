"""Brand administration: the brand itself, its programs and its API keys.

Each function is one unit of work (one database transaction) and takes keyword arguments
only. The brand always comes from the caller's principal, never from request data.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    Violations,
    quoted,
)
from attain_server.domain.model import ApiKey, Brand, Program, Role
from attain_server.domain.validation import check_code, check_label, check_text, zone_error
from attain_server.store import brands as brand_store
from attain_server.store import members as member_store
from attain_server.store.engine import Database
from attain_server.store.errors import Conflict

from .auth import hash_secret, new_secret
from .paging import Page, next_token

# ---------------------------------------------------------------- brands


async def create_brand(
    *,
    db: Database,
    code: str,
    time_zone: str,
    now: datetime,
    display_name: str = "",
    program_code: str = "POINTS",
) -> tuple[Brand, ApiKey, str]:
    """Operator use case: a brand, its default program and its first admin key (secret once)."""
    v = Violations()
    check_code(v, "code", code)
    check_code(v, "program", program_code)
    check_text(v, "display_name", display_name)
    if (why := zone_error(time_zone)) is not None:
        v.add("time_zone", why)
    v.raise_if_any()
    key_id, secret = new_secret()
    async with db.write() as s:
        try:
            brand = await brand_store.insert_brand(
                s,
                code=code,
                display_name=display_name or code,
                time_zone=time_zone,
                create_time=now,
            )
        except Conflict as exc:
            raise AlreadyExists(f"brand {quoted(code)} already exists") from exc
        await brand_store.insert_program(
            s, brand=code, program=Program(program_code, program_code, True), create_time=now
        )
        key = await brand_store.insert_api_key(
            s,
            brand=code,
            key_id=key_id,
            secret_hash=hash_secret(secret),
            role=Role.BRAND_ADMIN,
            label="first admin key",
            create_time=now,
        )
        return brand, key, secret


async def require_brand(s: AsyncSession, brand: str) -> Brand:
    """The brand, or NotFound: a key that outlived its brand finds nothing."""
    found = await brand_store.find_brand(s, code=brand)
    if found is None:
        raise NotFound("brand", brand)
    return found


async def get_brand(*, db: Database, brand: str) -> Brand:
    async with db.read() as s:
        return await require_brand(s, brand)


async def update_brand(*, db: Database, brand: str, display_name: str) -> Brand:
    v = Violations()
    check_text(v, "display_name", display_name)
    v.raise_if_any()
    async with db.write() as s:
        renamed = await brand_store.rename_brand(s, code=brand, display_name=display_name)
        if renamed is None:
            raise NotFound("brand", brand)
        return renamed


# ---------------------------------------------------------------- keys


async def create_api_key(
    *, db: Database, brand: str, role: Role | None, member_id: str, label: str, now: datetime
) -> tuple[ApiKey, str]:
    v = Violations()
    if role is None:
        v.add("role", "is required: ROLE_BRAND_ADMIN, ROLE_INGEST or ROLE_MEMBER")
    elif role is Role.MEMBER and not member_id:
        v.add("member_id", "is required for a ROLE_MEMBER key")
    elif role is not Role.MEMBER and member_id:
        v.add("member_id", "is only for ROLE_MEMBER keys: leave it empty")
    check_label(v, "member_id", member_id)
    check_text(v, "label", label)
    v.raise_if_any()
    assert role is not None
    key_id, secret = new_secret()
    async with db.write() as s:
        if role is Role.MEMBER and not await _member_exists(s, brand, member_id):
            raise InvalidArgument.one("member_id", f"unknown member {quoted(member_id)}")
        key = await brand_store.insert_api_key(
            s,
            brand=brand,
            key_id=key_id,
            secret_hash=hash_secret(secret),
            role=role,
            member_id=member_id,
            label=label,
            create_time=now,
        )
        return key, secret


async def _member_exists(s: AsyncSession, brand: str, member_id: str) -> bool:
    return await member_store.find_member(s, brand=brand, external_id=member_id) is not None


async def list_api_keys(*, db: Database, brand: str, page: Page) -> tuple[list[ApiKey], str]:
    after = page.key(str)[0] if page.after else None
    async with db.read() as s:
        rows = await brand_store.list_api_keys_after(
            s, brand=brand, after=after, limit=page.size + 1
        )
    items = rows[: page.size]
    return items, next_token(page, rows, [items[-1].key_id] if items else [])


async def revoke_api_key(*, db: Database, brand: str, key_id: str, now: datetime) -> ApiKey:
    async with db.write() as s:
        key = await brand_store.revoke_api_key(s, brand=brand, key_id=key_id, revoke_time=now)
        if key is None:
            raise NotFound("api key", key_id)
        return key


# ---------------------------------------------------------------- programs


async def create_program(*, db: Database, brand: str, program: Program, now: datetime) -> Program:
    v = Violations()
    check_code(v, "code", program.code)
    check_text(v, "display_name", program.display_name)
    v.raise_if_any()
    async with db.write() as s:
        if program.is_default:
            await brand_store.clear_default_program(s, brand=brand)
        try:
            return await brand_store.insert_program(
                s, brand=brand, program=program, create_time=now
            )
        except Conflict as exc:
            raise AlreadyExists(f"program {quoted(program.code)} already exists") from exc


async def get_program(*, db: Database, brand: str, code: str) -> Program:
    async with db.read() as s:
        found = await brand_store.find_program(s, brand=brand, code=code)
    if found is None:
        raise NotFound("program", code)
    return found


async def list_programs(*, db: Database, brand: str, page: Page) -> tuple[list[Program], str]:
    after = page.key(str)[0] if page.after else None
    async with db.read() as s:
        rows = await brand_store.list_programs_after(
            s, brand=brand, after=after, limit=page.size + 1
        )
    items = rows[: page.size]
    return items, next_token(page, rows, [items[-1].code] if items else [])


async def update_program(
    *, db: Database, brand: str, code: str, display_name: str | None, make_default: bool | None
) -> Program:
    v = Violations()
    if display_name is not None:
        check_text(v, "display_name", display_name)
    if make_default is False:
        v.add("is_default", "make another program the default instead of unsetting it")
    v.raise_if_any()
    async with db.write() as s:
        try:
            updated = await brand_store.update_program(
                s,
                brand=brand,
                code=code,
                display_name=display_name,
                make_default=bool(make_default),
            )
        except Conflict as exc:  # another replica made a default at the same moment
            raise Aborted("the default program changed concurrently: retry") from exc
        if updated is None:
            raise NotFound("program", code)
        return updated
