"""Targets and their values, in SQL."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import bindparam
from sqlmodel import col, select

from attain_server.domain.model import TargetDefinition

from . import bulk
from .codec import from_document
from .tables import TargetRow

_TARGET = TargetRow.__table__  # type: ignore[attr-defined]


class VersionedDefinition(NamedTuple):
    version: int  # bumped by every change of the definition
    definition: TargetDefinition


async def load_target_version(s: bulk.Conn, *, brand: str, code: str) -> int | None:
    """The target's version (one small column); None when it does not exist."""
    t = _TARGET
    found = await bulk.fetch(
        s,
        "target.version",
        lambda: select(t.c.version).where(
            t.c.brand_code == bindparam("brand"), t.c.code == bindparam("code")
        ),
        {"brand": brand, "code": code},
    )
    return int(found[0].version) if found else None


async def load_target_definition(
    s: bulk.Conn, *, brand: str, code: str
) -> VersionedDefinition | None:
    """The target's parsed definition with its version; None when it does not exist."""
    t = _TARGET
    rows = await bulk.fetch(
        s,
        "target.definition",
        lambda: select(t.c.version, t.c.definition).where(
            t.c.brand_code == bindparam("brand"), t.c.code == bindparam("code")
        ),
        {"brand": brand, "code": code},
    )
    if not rows:
        return None
    return VersionedDefinition(int(rows[0].version), from_document(rows[0].definition))


async def list_active_target_versions(
    s: bulk.Conn, *, brand: str, code: str = "", after: str = ""
) -> list[tuple[str, int]]:
    """(code, version) of the brand's active targets by code: only `code` when given, only
    those after `after` when given."""
    q = select(TargetRow.code, TargetRow.version).where(
        TargetRow.brand_code == brand, TargetRow.state == "ACTIVE"
    )
    if code:
        q = q.where(TargetRow.code == code)
    if after:
        q = q.where(col(TargetRow.code) > after)
    orm = await bulk.orm(s)
    rows = (await orm.execute(q.order_by(col(TargetRow.code)))).all()
    return [(str(c), int(v)) for c, v in rows]
