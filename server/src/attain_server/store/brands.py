"""Brands, their programs and API keys, in SQL."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlmodel import col, select

from . import bulk
from .tables import ProgramRow

_PROGRAM = ProgramRow.__table__  # type: ignore[attr-defined]


async def load_default_program_code(s: bulk.Conn, *, brand: str) -> str:
    """The code of the brand's default program; "" when it has none."""
    p = _PROGRAM
    rows = await bulk.fetch(
        s,
        "program.default",
        lambda: select(p.c.code).where(p.c.brand_code == bindparam("brand"), p.c.is_default),
        {"brand": brand},
    )
    return str(rows[0].code) if rows else ""


async def list_program_codes(s: bulk.Conn, *, brand: str) -> list[str]:
    """Every program code of the brand, in order."""
    orm = await bulk.orm(s)
    q = select(ProgramRow.code).where(ProgramRow.brand_code == brand).order_by(col(ProgramRow.code))
    return [str(code) for code in (await orm.execute(q)).scalars().all()]


async def program_exists(s: bulk.Conn, *, brand: str, code: str) -> bool:
    orm = await bulk.orm(s)
    return await orm.get(ProgramRow, (brand, code)) is not None
