"""A brand's members: upserted by external id, read one by one or a page at a time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.model import Member

from . import _runner as runner
from .tables import MemberRow
from .upsert import upsert_statement

# Ids per IN list when asking which members exist.
_ID_CHUNK = 500
# Rows read at a time when filtering by group, which lives in a JSON list.
_GROUP_SCAN_CHUNK = 1000
_MEMBER_TABLE = MemberRow.__table__  # type: ignore[attr-defined]


def _member(row: MemberRow) -> Member:
    return Member(
        row.external_id,
        row.display_name,
        row.level,
        tuple(row.groups),
        row.create_time,
        row.update_time,
    )


async def upsert_member(s: AsyncSession, *, brand: str, member: Member, now: datetime) -> Member:
    """The member as stored after inserting it or replacing its name, level and groups; its
    create_time is ``now`` only when this inserted it."""
    table = MemberRow.__table__  # type: ignore[attr-defined]
    stmt = upsert_statement(
        s,
        table,
        keys=["brand_code", "external_id"],
        update=["display_name", "level", "groups", "update_time"],
    ).values(
        brand_code=brand,
        external_id=member.external_id,
        display_name=member.display_name,
        level=member.level,
        groups=list(member.groups),
        create_time=now,
        update_time=now,
    )
    await s.execute(stmt)
    row = await s.get_one(MemberRow, (brand, member.external_id), populate_existing=True)
    return _member(row)


async def find_member(s: AsyncSession, *, brand: str, external_id: str) -> Member | None:
    row = await s.get(MemberRow, (brand, external_id))
    return None if row is None else _member(row)


async def existing_member_ids(s: AsyncSession, *, brand: str, ids: Iterable[str]) -> set[str]:
    """Those of ``ids`` that name a member of the brand."""
    wanted = sorted(ids)
    found: set[str] = set()
    for at in range(0, len(wanted), _ID_CHUNK):
        rows = await s.scalars(
            select(MemberRow.external_id).where(
                MemberRow.brand_code == brand,
                col(MemberRow.external_id).in_(wanted[at : at + _ID_CHUNK]),
            )
        )
        found.update(rows)
    return found


async def list_members_after(
    s: AsyncSession,
    *,
    brand: str,
    after: str | None,
    limit: int,
    level: str = "",
    group: str = "",
) -> list[Member]:
    """Up to ``limit`` members in external id order after ``after``, of ``level`` and in
    ``group`` when given."""
    q = select(MemberRow).where(MemberRow.brand_code == brand)
    if level:
        q = q.where(MemberRow.level == level)
    q = q.order_by(col(MemberRow.external_id))
    if not group:
        if after is not None:
            q = q.where(col(MemberRow.external_id) > after)
        return [_member(r) for r in await s.scalars(q.limit(limit))]
    # Groups live in a JSON list; filter in Python, reading in chunks.
    rows: list[MemberRow] = []
    while len(rows) < limit:
        chunk_q = q if after is None else q.where(col(MemberRow.external_id) > after)
        chunk = list(await s.scalars(chunk_q.limit(_GROUP_SCAN_CHUNK)))
        if not chunk:
            break
        rows.extend(r for r in chunk if group in r.groups)
        after = chunk[-1].external_id
    return [_member(r) for r in rows[:limit]]


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


async def member_exists(s: runner.Conn, *, brand: str, member_id: str) -> bool:
    orm = await runner.orm(s)
    return await orm.get(MemberRow, (brand, member_id)) is not None


_MEMBERS_BY_ID = runner.QueryIn(
    lambda n: select(
        _MEMBER_TABLE.c.external_id, _MEMBER_TABLE.c.level, _MEMBER_TABLE.c.groups
    ).where(
        _MEMBER_TABLE.c.brand_code == bindparam("brand"),
        runner.in_list(_MEMBER_TABLE.c.external_id, n),
    )
)


async def load_members_by_id(s: runner.Conn, brand: str, ids: Iterable[str]) -> dict[str, Member]:
    """The members among `ids` that exist, by id, without their display names (what reads
    them this way decides audiences and values, and shows no name)."""
    rows = await _MEMBERS_BY_ID.rows(s, {"brand": brand}, sorted(set(ids)))
    return {r.external_id: Member(r.external_id, "", r.level, tuple(r.groups)) for r in rows}
