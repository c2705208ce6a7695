"""Brands, their programs and their API keys: rows in, domain values out."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.model import ApiKey, Brand, Program, Role

from . import _runner as runner
from .tables import ApiKeyRow, BrandRow, ProgramRow


class KeyHolder(NamedTuple):
    """An API key with the brand it belongs to, as a bearer secret resolves to it."""

    brand: str
    key: ApiKey


def _brand(row: BrandRow) -> Brand:
    return Brand(row.code, row.display_name, row.time_zone, row.create_time)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        row.key_id, Role(row.role), row.member_id, row.label, row.create_time, row.revoke_time
    )


def _program(row: ProgramRow) -> Program:
    return Program(row.code, row.display_name, row.is_default, row.create_time)


# ---------------------------------------------------------------- brands


async def insert_brand(
    s: AsyncSession, *, code: str, display_name: str, time_zone: str, create_time: datetime
) -> Brand:
    """A new brand; Conflict when its code is taken."""
    row = BrandRow(
        code=code, display_name=display_name, time_zone=time_zone, create_time=create_time
    )
    s.add(row)
    await s.flush()
    return _brand(row)


async def find_brand(s: AsyncSession, *, code: str) -> Brand | None:
    row = await s.get(BrandRow, code)
    return None if row is None else _brand(row)


async def rename_brand(s: AsyncSession, *, code: str, display_name: str) -> Brand | None:
    """The brand with its new display name; None when there is no such brand."""
    row = await s.get(BrandRow, code)
    if row is None:
        return None
    row.display_name = display_name
    s.add(row)
    return _brand(row)


# ---------------------------------------------------------------- API keys


async def insert_api_key(
    s: AsyncSession,
    *,
    brand: str,
    key_id: str,
    secret_hash: str,
    role: Role,
    member_id: str = "",
    label: str,
    create_time: datetime,
) -> ApiKey:
    row = ApiKeyRow(
        brand_code=brand,
        key_id=key_id,
        secret_hash=secret_hash,
        role=role.value,
        member_id=member_id,
        label=label,
        create_time=create_time,
    )
    s.add(row)
    return _key(row)


async def list_api_keys_after(
    s: AsyncSession, *, brand: str, after: str | None, limit: int
) -> list[ApiKey]:
    """Up to ``limit`` of the brand's keys in key id order, after the id ``after``."""
    q = select(ApiKeyRow).where(ApiKeyRow.brand_code == brand)
    if after is not None:
        q = q.where(col(ApiKeyRow.key_id) > after)
    rows = await s.scalars(q.order_by(col(ApiKeyRow.key_id)).limit(limit))
    return [_key(r) for r in rows]


async def revoke_api_key(
    s: AsyncSession, *, brand: str, key_id: str, revoke_time: datetime
) -> ApiKey | None:
    """The key, revoked at ``revoke_time`` unless it was already; None when there is none."""
    row = await s.get(ApiKeyRow, (brand, key_id))
    if row is None:
        return None
    if row.revoke_time is None:
        row.revoke_time = revoke_time
        s.add(row)
    return _key(row)


async def find_api_key_by_secret_hash(s: AsyncSession, *, secret_hash: str) -> KeyHolder | None:
    q = select(ApiKeyRow).where(ApiKeyRow.secret_hash == secret_hash)
    row = (await s.scalars(q)).first()
    return None if row is None else KeyHolder(row.brand_code, _key(row))


# ---------------------------------------------------------------- programs


async def insert_program(
    s: AsyncSession, *, brand: str, program: Program, create_time: datetime
) -> Program:
    """A new program (its code as display name when it has none); Conflict when the code is
    taken, or when it is a second default."""
    row = ProgramRow(
        brand_code=brand,
        code=program.code,
        display_name=program.display_name or program.code,
        is_default=program.is_default,
        create_time=create_time,
    )
    s.add(row)
    await s.flush()
    return _program(row)


async def clear_default_program(s: AsyncSession, *, brand: str) -> None:
    """No program of the brand is its default (before another one becomes it)."""
    await s.execute(
        update(ProgramRow)
        .where(col(ProgramRow.brand_code) == brand, col(ProgramRow.is_default))
        .values(is_default=False)
    )


async def find_program(s: AsyncSession, *, brand: str, code: str) -> Program | None:
    row = await s.get(ProgramRow, (brand, code))
    return None if row is None else _program(row)


async def list_programs_after(
    s: AsyncSession, *, brand: str, after: str | None, limit: int
) -> list[Program]:
    """Up to ``limit`` of the brand's programs in code order, after the code ``after``."""
    q = select(ProgramRow).where(ProgramRow.brand_code == brand)
    if after is not None:
        q = q.where(col(ProgramRow.code) > after)
    rows = await s.scalars(q.order_by(col(ProgramRow.code)).limit(limit))
    return [_program(r) for r in rows]


async def program_codes_of_brand(s: AsyncSession, *, brand: str) -> set[str]:
    rows = await s.scalars(select(ProgramRow.code).where(ProgramRow.brand_code == brand))
    return set(rows)


async def update_program(
    s: AsyncSession, *, brand: str, code: str, display_name: str | None, make_default: bool
) -> Program | None:
    """The program with the changes written; None when there is none. Conflict when another
    writer made a default at the same moment (the database allows one per brand)."""
    row = await s.get(ProgramRow, (brand, code))
    if row is None:
        return None
    if display_name is not None:
        row.display_name = display_name
    if make_default and not row.is_default:
        await clear_default_program(s, brand=brand)
        row.is_default = True
    s.add(row)
    await s.flush()
    await s.refresh(row)
    return _program(row)


class BrandZone(NamedTuple):
    """A brand's code and the IANA name of its time zone."""

    code: str
    time_zone: str


async def load_brand_time_zone(s: AsyncSession, *, brand: str) -> str | None:
    """The IANA name of the brand's time zone; None when the brand does not exist."""
    row = await s.get(BrandRow, brand)
    return row.time_zone if row is not None else None


async def list_brand_time_zones(
    s: AsyncSession, *, only: Collection[str] | None = None
) -> list[BrandZone]:
    """Every brand (or those named in `only`) by code, with its time zone."""
    q = select(BrandRow.code, BrandRow.time_zone)
    if only is not None:
        q = q.where(col(BrandRow.code).in_(sorted(only)))
    rows = await s.execute(q.order_by(col(BrandRow.code)))
    return [BrandZone(code, zone) for code, zone in rows.all()]


_PROGRAM = ProgramRow.__table__  # type: ignore[attr-defined]


_DEFAULT_PROGRAM = runner.Query(
    lambda: select(_PROGRAM.c.code).where(
        _PROGRAM.c.brand_code == bindparam("brand"), _PROGRAM.c.is_default
    )
)


async def load_default_program_code(s: runner.Conn, *, brand: str) -> str:
    """The code of the brand's default program; "" when it has none."""
    rows = await _DEFAULT_PROGRAM.rows(s, {"brand": brand})
    return str(rows[0].code) if rows else ""


async def list_program_codes(s: runner.Conn, *, brand: str) -> list[str]:
    """Every program code of the brand, in order."""
    orm = await runner.orm(s)
    q = select(ProgramRow.code).where(ProgramRow.brand_code == brand).order_by(col(ProgramRow.code))
    return [str(code) for code in (await orm.execute(q)).scalars().all()]


async def program_exists(s: runner.Conn, *, brand: str, code: str) -> bool:
    orm = await runner.orm(s)
    return await orm.get(ProgramRow, (brand, code)) is not None


_BRAND_TABLE = BrandRow.__table__  # type: ignore[attr-defined]


# A brand's zone never changes once it exists (UpdateBrand changes only its name).
_ZONES: dict[tuple[Engine, str], ZoneInfo] = {}


async def brand_zone(s: runner.Conn, brand: str) -> ZoneInfo | None:
    """The brand's time zone, read once per database; None when the brand does not exist."""
    key = (runner.engine_of(s), brand)
    zone = _ZONES.get(key)
    if zone is None:
        zone = await read_brand_zone(s, brand)
        if zone is not None:
            _ZONES[key] = zone
    return zone


_ZONE = runner.Query(
    lambda: select(_BRAND_TABLE.c.time_zone).where(_BRAND_TABLE.c.code == bindparam("brand"))
)


async def read_brand_zone(s: runner.Conn, brand: str) -> ZoneInfo | None:
    """The brand's time zone as stored now; None when the brand does not exist."""
    rows = await _ZONE.rows(s, {"brand": brand})
    return ZoneInfo(rows[0].time_zone) if rows else None
