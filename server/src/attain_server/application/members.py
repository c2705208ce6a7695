"""A brand's members: upserted by external id, read one by one or a page at a time."""

from __future__ import annotations

from datetime import datetime

from attain_server.domain.errors import NotFound, Violations, quoted
from attain_server.domain.model import Member
from attain_server.domain.validation import MAX_MEMBER_GROUPS, check_label, check_text
from attain_server.store import members as member_store
from attain_server.store.engine import Database

from .paging import Page, next_token


def check_member(v: Violations, m: Member) -> None:
    """What is wrong with ``m``, each field named within the member ("groups[1]")."""
    check_label(v, "external_id", m.external_id, required=True)
    check_text(v, "display_name", m.display_name)
    check_label(v, "level", m.level)
    if len(m.groups) > MAX_MEMBER_GROUPS:
        v.add("groups", f"a member may be in at most {MAX_MEMBER_GROUPS} groups")
        return
    seen: set[str] = set()
    for i, group in enumerate(m.groups):
        check_label(v, f"groups[{i}]", group, required=True)
        if group in seen:
            v.add(f"groups[{i}]", f"{quoted(group)} is listed twice")
        seen.add(group)


async def upsert_member(
    *, db: Database, brand: str, member: Member, now: datetime
) -> tuple[Member, bool]:
    """The member as stored, and whether this call created it."""
    v = Violations()
    check_member(v, member)
    v.raise_if_any()
    async with db.write() as s:
        stored = await member_store.upsert_member(s, brand=brand, member=member, now=now)
    # create_time is only written by the INSERT branch: equal to now means it was new.
    return stored, stored.create_time == now


async def get_member(*, db: Database, brand: str, external_id: str) -> Member:
    async with db.read() as s:
        found = await member_store.find_member(s, brand=brand, external_id=external_id)
    if found is None:
        raise NotFound("member", external_id)
    return found


async def list_members(
    *, db: Database, brand: str, page: Page, level: str = "", group: str = ""
) -> tuple[list[Member], str]:
    after = page.key(str)[0] if page.after else None
    async with db.read() as s:
        rows = await member_store.list_members_after(
            s, brand=brand, after=after, limit=page.size + 1, level=level, group=group
        )
    items = rows[: page.size]
    return items, next_token(page, rows, [items[-1].external_id] if items else [])
