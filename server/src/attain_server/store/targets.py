"""A brand's targets (one versioned definition document each) and per-member target values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

from sqlalchemy import bindparam, tuple_, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql import Select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.model import Target, TargetDefinition, TargetState, TargetValue
from attain_server.domain.progress import ProgressKey

from . import _runner as runner
from .codec import from_document, to_document
from .tables import TargetRow, TargetValueRow
from .upsert import upsert_statement


class TargetValueKey(NamedTuple):
    """What one stored target value is for."""

    target_code: str
    cycle: str
    member_id: str
    criterion_id: str


def _target(row: TargetRow) -> Target:
    return Target(
        from_document(row.definition),
        TargetState(row.state),
        row.create_time,
        row.update_time,
        row.version,
    )


# ---------------------------------------------------------------- targets


async def insert_target(
    s: AsyncSession, *, brand: str, definition: TargetDefinition, now: datetime
) -> Target:
    """A new active target at version 1; Conflict when its code is taken."""
    row = TargetRow(
        brand_code=brand,
        code=definition.code,
        state=TargetState.ACTIVE.value,
        definition=to_document(definition),
        version=1,
        create_time=now,
        update_time=now,
    )
    s.add(row)
    await s.flush()
    return _target(row)


async def find_target(s: AsyncSession, *, brand: str, code: str) -> Target | None:
    row = await s.get(TargetRow, (brand, code))
    return None if row is None else _target(row)


async def list_targets_after(
    s: AsyncSession, *, brand: str, after: str | None, limit: int, show_archived: bool
) -> list[Target]:
    """Up to ``limit`` targets in code order after the code ``after``; archived ones only
    when ``show_archived``."""
    q = select(TargetRow).where(TargetRow.brand_code == brand)
    if not show_archived:
        q = q.where(TargetRow.state == TargetState.ACTIVE.value)
    if after is not None:
        q = q.where(col(TargetRow.code) > after)
    rows = await s.scalars(q.order_by(col(TargetRow.code)).limit(limit))
    return [_target(r) for r in rows]


async def replace_target_definition(
    s: AsyncSession,
    *,
    brand: str,
    code: str,
    definition: TargetDefinition,
    version: int,
    now: datetime,
) -> Target | None:
    """The target with ``definition`` as its next version, if it is still at ``version``;
    None when another writer changed it since it was read."""
    result = await s.execute(
        update(TargetRow)
        .where(
            col(TargetRow.brand_code) == brand,
            col(TargetRow.code) == code,
            col(TargetRow.version) == version,
        )
        .values(definition=to_document(definition), version=version + 1, update_time=now)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        return None
    row = await s.get_one(TargetRow, (brand, code), populate_existing=True)
    return _target(row)


async def archive_target(s: AsyncSession, *, brand: str, code: str, now: datetime) -> Target | None:
    """The target, archived as a new version unless it already was; None when there is none."""
    row = await s.get(TargetRow, (brand, code))
    if row is None:
        return None
    if row.state != TargetState.ARCHIVED.value:
        row.state = TargetState.ARCHIVED.value
        row.version += 1
        row.update_time = now
        s.add(row)
    return _target(row)


# ---------------------------------------------------------------- target values


async def upsert_target_values(
    s: AsyncSession, *, brand: str, values: Sequence[TargetValue], now: datetime
) -> None:
    """Stores the values, replacing those stored for the same key."""
    if not values:
        return
    table = TargetValueRow.__table__  # type: ignore[attr-defined]
    await s.execute(
        upsert_statement(
            s,
            table,
            keys=["brand_code", "target_code", "cycle", "member_id", "criterion_id"],
            update=["value", "update_time"],
        ),
        [
            {
                "brand_code": brand,
                "target_code": tv.target_code,
                "cycle": tv.cycle,
                "member_id": tv.member_id,
                "criterion_id": tv.criterion_id,
                "value": tv.value,
                "update_time": now,
            }
            for tv in values
        ],
    )


async def stored_target_values(
    s: AsyncSession, *, brand: str, target_code: str, cycle: str, member_ids: Iterable[str]
) -> dict[TargetValueKey, Decimal]:
    """The values stored for the members in one cycle of one target, by key."""
    rows = await s.scalars(
        select(TargetValueRow).where(
            TargetValueRow.brand_code == brand,
            TargetValueRow.target_code == target_code,
            TargetValueRow.cycle == cycle,
            col(TargetValueRow.member_id).in_(set(member_ids)),
        )
    )
    return {
        TargetValueKey(r.target_code, r.cycle, r.member_id, r.criterion_id): r.value for r in rows
    }


async def list_target_values_after(
    s: AsyncSession,
    *,
    brand: str,
    target_code: str,
    cycle: str,
    after: TargetValueKey | None,
    limit: int,
) -> list[TargetValue]:
    """Up to ``limit`` values of the target (of ``cycle`` when given) in (cycle, member,
    criterion) order after ``after`` (its target_code is not compared)."""
    v = TargetValueRow
    q = select(v).where(v.brand_code == brand, v.target_code == target_code)
    if cycle:
        q = q.where(v.cycle == cycle)
    if after is not None:
        q = q.where(
            tuple_(v.cycle, v.member_id, v.criterion_id)
            > tuple_(after.cycle, after.member_id, after.criterion_id)
        )
    q = q.order_by(col(v.cycle), col(v.member_id), col(v.criterion_id))
    rows = await s.scalars(q.limit(limit))
    return [TargetValue(r.member_id, r.target_code, r.cycle, r.criterion_id, r.value) for r in rows]


class TargetVersion(NamedTuple):
    """A target's code, its definition's version and its state (ACTIVE, ARCHIVED)."""

    code: str
    version: int
    state: str


async def list_target_versions(s: AsyncSession, *, brand: str) -> list[TargetVersion]:
    """Every target of the brand with its version and state (not its definition)."""
    rows = await s.execute(
        select(TargetRow.code, TargetRow.version, TargetRow.state).where(
            TargetRow.brand_code == brand
        )
    )
    return [TargetVersion(code, version, state) for code, version, state in rows.all()]


async def find_target_definition(
    s: AsyncSession, *, brand: str, code: str
) -> TargetDefinition | None:
    """The target's definition; None when the brand has no such target."""
    row = await s.get(TargetRow, (brand, code))
    return from_document(row.definition) if row is not None else None


_TARGET = TargetRow.__table__  # type: ignore[attr-defined]


class VersionedDefinition(NamedTuple):
    version: int  # bumped by every change of the definition
    definition: TargetDefinition


_VERSION = runner.Query(
    lambda: select(_TARGET.c.version).where(
        _TARGET.c.brand_code == bindparam("brand"), _TARGET.c.code == bindparam("code")
    )
)


async def load_target_version(s: runner.Conn, *, brand: str, code: str) -> int | None:
    """The target's version (one small column); None when it does not exist."""
    found = await _VERSION.rows(s, {"brand": brand, "code": code})
    return int(found[0].version) if found else None


async def list_active_target_versions(
    s: runner.Conn, *, brand: str, code: str = "", after: str = ""
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
    orm = await runner.orm(s)
    rows = (await orm.execute(q.order_by(col(TargetRow.code)))).all()
    return [(str(c), int(v)) for c, v in rows]


_DEFINITION = runner.Query(
    lambda: select(_TARGET.c.version, _TARGET.c.definition).where(
        _TARGET.c.brand_code == bindparam("brand"), _TARGET.c.code == bindparam("code")
    )
)


async def load_target_definition(
    s: runner.Conn, *, brand: str, code: str
) -> VersionedDefinition | None:
    """The target's parsed definition with its version; None when it does not exist."""
    rows = await _DEFINITION.rows(s, {"brand": brand, "code": code})
    if not rows:
        return None
    return VersionedDefinition(int(rows[0].version), from_document(rows[0].definition))


_TARGET_TABLE = TargetRow.__table__  # type: ignore[attr-defined]


_TARGET_VALUE_TABLE = TargetValueRow.__table__  # type: ignore[attr-defined]


class CatalogVersion(NamedTuple):
    """Which version of a target is stored, and its state."""

    code: str
    version: int
    state: TargetState


class CatalogDefinition(NamedTuple):
    """A target's stored definition at one version."""

    code: str
    version: int
    state: TargetState
    definition: TargetDefinition


_CATALOG_VERSIONS = runner.Query(
    lambda: select(_TARGET_TABLE.c.code, _TARGET_TABLE.c.version, _TARGET_TABLE.c.state).where(
        _TARGET_TABLE.c.brand_code == bindparam("brand")
    )
)


async def load_target_versions(s: runner.Conn, brand: str) -> list[CatalogVersion]:
    """Every target of the brand (any state) with its current version."""
    rows = await _CATALOG_VERSIONS.rows(s, {"brand": brand})
    return [CatalogVersion(r.code, r.version, TargetState(r.state)) for r in rows]


_DOCUMENTS = runner.QueryIn(
    lambda n: select(
        _TARGET_TABLE.c.code,
        _TARGET_TABLE.c.version,
        _TARGET_TABLE.c.state,
        _TARGET_TABLE.c.definition,
    ).where(
        _TARGET_TABLE.c.brand_code == bindparam("brand"), runner.in_list(_TARGET_TABLE.c.code, n)
    )
)


async def load_target_definitions(
    s: runner.Conn, brand: str, codes: Iterable[str]
) -> list[CatalogDefinition]:
    """The stored definitions of these targets of the brand, parsed."""
    rows = await _DOCUMENTS.rows(s, {"brand": brand}, codes)
    return [
        CatalogDefinition(r.code, r.version, TargetState(r.state), from_document(r.definition))
        for r in rows
    ]


def _member_values_query(size: int) -> Select[Any]:
    v = _TARGET_VALUE_TABLE
    return select(v.c.member_id, v.c.criterion_id, v.c.value).where(
        v.c.brand_code == bindparam("brand"),
        v.c.target_code == bindparam("target"),
        v.c.cycle == bindparam("cycle"),
        runner.in_list(v.c.member_id, size),
    )


_MEMBER_VALUES = runner.QueryIn(_member_values_query)


async def load_member_target_values(
    s: runner.Conn, brand: str, keys: Iterable[ProgressKey]
) -> dict[ProgressKey, dict[str, Decimal]]:
    """Per-member cycle values (from SetTargetValues or target files) of these progress
    rows, by criterion id; rows with none are left out."""
    out: dict[ProgressKey, dict[str, Decimal]] = {}
    by_cycle: dict[tuple[str, str], list[str]] = {}
    for tc, cy, member in sorted(keys):
        by_cycle.setdefault((tc, cy), []).append(member)
    for (tc, cy), members in by_cycle.items():
        params = {"brand": brand, "target": tc, "cycle": cy}
        rows = await _MEMBER_VALUES.rows(s, params, members)
        for r in rows:
            out.setdefault((tc, cy, r.member_id), {})[r.criterion_id] = r.value
    return out
