"""The member repository: a brand's members, their levels and groups."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.model import Member

from .tables import MemberRow


async def page_members_by_external_id(
    s: AsyncSession, *, brand: str, after: str, limit: int
) -> list[Member]:
    """Up to `limit` members of the brand whose id sorts after `after`, in id order."""
    rows = await s.execute(
        select(MemberRow)
        .where(MemberRow.brand_code == brand, col(MemberRow.external_id) > after)
        .order_by(col(MemberRow.external_id))
        .limit(limit)
    )
    return [
        Member(r.external_id, r.display_name, r.level, tuple(r.groups))
        for r in rows.scalars().all()
    ]
