"""The member repository: members of a brand by external id."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select

from attain_server.domain.model import Member

from . import bulk
from .tables import MemberRow

_MEMBER_TABLE = MemberRow.__table__  # type: ignore[attr-defined]


async def load_members_by_id(s: bulk.Conn, brand: str, ids: Iterable[str]) -> dict[str, Member]:
    """The members among `ids` that exist, by id, without their display names (what reads
    them this way decides audiences and values, and shows no name)."""
    m = _MEMBER_TABLE
    rows = await bulk.fetch_in(
        s,
        "ingest.members",
        lambda n: select(m.c.external_id, m.c.level, m.c.groups).where(
            m.c.brand_code == bindparam("brand"), bulk.in_list(m.c.external_id, n)
        ),
        {"brand": brand},
        sorted(set(ids)),
    )
    return {r.external_id: Member(r.external_id, "", r.level, tuple(r.groups)) for r in rows}
