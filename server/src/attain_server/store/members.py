"""Members of a brand, in SQL."""

from __future__ import annotations

from . import bulk
from .tables import MemberRow


async def member_exists(s: bulk.Conn, *, brand: str, member_id: str) -> bool:
    orm = await bulk.orm(s)
    return await orm.get(MemberRow, (brand, member_id)) is not None
