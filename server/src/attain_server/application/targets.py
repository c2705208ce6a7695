"""A brand's targets: create, read, list, update with a field mask (AIP-134) and archive.

Each function is one unit of work (one database transaction) and takes keyword arguments
only. A member key (``member_id``) sees only the targets whose audience includes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    quoted,
)
from attain_server.domain.model import Target, TargetDefinition, TargetState
from attain_server.domain.periods import Calendar
from attain_server.domain.validation import target_calendar, validate_target
from attain_server.store import brands as brand_store
from attain_server.store import targets as target_store
from attain_server.store.engine import Database
from attain_server.store.errors import Conflict

from .audiences import audience_test, require_seen
from .brands import require_brand
from .paging import Page, next_token

UPDATABLE_TARGET_FIELDS = (
    "display_name",
    "description",
    "criteria",
    "period",
    "offset_days",
    "audience",
    "rules",
)


def calendar_of(definition: TargetDefinition, time_zone: str) -> Calendar:
    """The target's cycles in its brand's zone; UnusableTarget when it has none."""
    return target_calendar(definition, ZoneInfo(time_zone))


async def require_target(s: AsyncSession, brand: str, code: str) -> Target:
    """The target, or NotFound."""
    found = await target_store.find_target(s, brand=brand, code=code)
    if found is None:
        raise NotFound("target", code)
    return found


async def _validate(s: AsyncSession, brand: str, definition: TargetDefinition) -> None:
    """Raises what is wrong with the definition, its programs checked against the brand's."""
    programs = await brand_store.program_codes_of_brand(s, brand=brand)
    validate_target(definition, programs=programs).raise_if_any()


async def create_target(
    *, db: Database, brand: str, definition: TargetDefinition, now: datetime
) -> Target:
    async with db.write() as s:
        await require_brand(s, brand)
        await _validate(s, brand, definition)
        try:
            return await target_store.insert_target(s, brand=brand, definition=definition, now=now)
        except Conflict as exc:
            raise AlreadyExists(f"target {quoted(definition.code)} already exists") from exc


async def get_target(*, db: Database, brand: str, code: str, member_id: str = "") -> Target:
    """The target; for a member key (``member_id``) only if its audience includes it."""
    async with db.read() as s:
        target = await require_target(s, brand, code)
        await require_seen(s, brand, target.definition, member_id)
        return target


async def list_targets(
    *, db: Database, brand: str, page: Page, show_archived: bool = False, member_id: str = ""
) -> tuple[list[Target], str]:
    """The brand's targets by code; for a member key (``member_id``) those whose audience
    includes it, read on until the page is full."""
    async with db.read() as s:
        seen = await audience_test(s, brand, member_id)
        after = page.key(str)[0] if page.after else None
        found: list[Target] = []
        while len(found) <= page.size:
            chunk = await target_store.list_targets_after(
                s, brand=brand, after=after, limit=page.size + 1, show_archived=show_archived
            )
            found.extend(t for t in chunk if seen(t.definition))
            if len(chunk) <= page.size:
                break
            after = chunk[-1].code
    found = found[: page.size + 1]
    items = found[: page.size]
    return items, next_token(page, found, [items[-1].code] if items else [])


async def update_target(
    *,
    db: Database,
    brand: str,
    code: str,
    changes: Mapping[str, Any],
    etag: str,
    now: datetime,
) -> Target:
    """Replaces the given fields of the definition (AIP-134); ``changes`` maps field -> value."""
    unknown = sorted(set(changes) - set(UPDATABLE_TARGET_FIELDS))
    if unknown:
        raise InvalidArgument.one("update_mask", f"cannot update {', '.join(unknown)}")
    async with db.write() as s:
        current = await require_target(s, brand, code)
        if etag and etag != current.etag:
            raise Aborted(
                f"target {code!r} changed since it was read (etag {current.etag}, "
                f"given {etag}): read it again",
                reason="ETAG_MISMATCH",
            )
        if current.state is TargetState.ARCHIVED:
            raise FailedPrecondition(f"target {code!r} is archived", reason="ARCHIVED")
        new = dataclasses.replace(current.definition, **changes)
        await _validate(s, brand, new)
        updated = await target_store.replace_target_definition(
            s, brand=brand, code=code, definition=new, version=current.version, now=now
        )
        if updated is None:  # a concurrent update won between our read and write
            raise Aborted(
                f"target {code!r} changed concurrently: retry", reason="CONCURRENT_UPDATE"
            )
        return updated


async def archive_target(*, db: Database, brand: str, code: str, now: datetime) -> Target:
    async with db.write() as s:
        archived = await target_store.archive_target(s, brand=brand, code=code, now=now)
        if archived is None:
            raise NotFound("target", code)
        return archived
