"""The progress repository: one row per (target, cycle, member) with its tallies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.awards import Award

from . import bulk
from .awards import AWARD_COLUMNS
from .tables import AwardRow, ProgressRow, TargetRow
from .upsert import insert

_KEY = ["brand_code", "target_code", "cycle", "member_id"]


async def add_opening_progress_rows(
    s: AsyncSession, *, rows: Sequence[Mapping[str, object]]
) -> None:
    """Inserts rows as they open; a row that exists already (a sale opened it first) stays
    as it is."""
    if not rows:
        return
    table = ProgressRow.__table__  # type: ignore[attr-defined]
    await s.execute(insert(s, table).on_conflict_do_nothing(index_elements=_KEY), list(rows))


_PROGRESS = ProgressRow.__table__  # type: ignore[attr-defined]


_TARGET = TargetRow.__table__  # type: ignore[attr-defined]


_AWARD = AwardRow.__table__  # type: ignore[attr-defined]


class StoredProgress(NamedTuple):
    """A progress row's columns as a reader needs them (its state, when and how it ranks)."""

    target_code: str
    cycle: str
    member_id: str
    level: str
    target_values: dict[str, str]
    tallies: dict[str, Any]
    version: int
    attainment: Decimal
    complete: bool
    update_time: datetime
    rank_key: int


PROGRESS_VIEW_COLUMNS = StoredProgress._fields


def _stored(row: Any) -> StoredProgress:
    return StoredProgress(*(getattr(row, name) for name in PROGRESS_VIEW_COLUMNS))


def _columns() -> list[Any]:
    return [_PROGRESS.c[name] for name in PROGRESS_VIEW_COLUMNS]


async def progress_view_row(
    s: bulk.Conn, *, brand: str, target_code: str, cycle: str, member_id: str
) -> StoredProgress | None:
    """One member's row of a cycle; None when it has not opened."""
    p = _PROGRESS
    rows = await bulk.fetch(
        s,
        "progress.one",
        lambda: select(*_columns()).where(
            p.c.brand_code == bindparam("brand"),
            p.c.target_code == bindparam("target"),
            p.c.cycle == bindparam("cycle"),
            p.c.member_id == bindparam("member"),
        ),
        {"brand": brand, "target": target_code, "cycle": cycle, "member": member_id},
    )
    return _stored(rows[0]) if rows else None


class ProgressWithAwards(NamedTuple):
    target_version: int
    row: StoredProgress | None  # None: the row has not opened
    awards: list[Award]


def _progress_with_awards() -> Any:
    t, p, a = _TARGET, _PROGRESS, _AWARD
    progress_on = and_(
        p.c.brand_code == t.c.brand_code,
        p.c.target_code == t.c.code,
        p.c.cycle == bindparam("cycle"),
        p.c.member_id == bindparam("member"),
    )
    award_on = and_(
        a.c.brand_code == p.c.brand_code,
        a.c.target_code == p.c.target_code,
        a.c.cycle == p.c.cycle,
        a.c.member_id == p.c.member_id,
    )
    return (
        select(t.c.version, *_columns(), *(a.c[name] for name in AWARD_COLUMNS))
        .select_from(t.outerjoin(p, progress_on).outerjoin(a, award_on))
        .where(t.c.brand_code == bindparam("brand"), t.c.code == bindparam("target"))
    )  # no ORDER BY: the reader puts the awards in the order they were earned


async def progress_view_with_awards(
    s: bulk.Conn, *, brand: str, target_code: str, cycle: str, member_id: str
) -> ProgressWithAwards | None:
    """The target's version, the member's row of `cycle` and the row's awards, in one
    statement (one round trip on PostgreSQL); None when the target does not exist."""
    rows = await bulk.fetch(
        s,
        "progress.view",
        _progress_with_awards,
        {"brand": brand, "target": target_code, "cycle": cycle, "member": member_id},
    )
    if not rows:
        return None
    # Columns by position: the target's version, the progress row's, then the award's.
    first, split = rows[0], 1 + len(PROGRESS_VIEW_COLUMNS)
    if first[1] is None:  # the progress row's target_code: the row has not opened
        return ProgressWithAwards(first[0], None, [])
    awards = [
        Award(*r[split:])  # the award's columns, in AWARD_COLUMNS order
        for r in rows
        if r[split] is not None
    ]
    return ProgressWithAwards(first[0], StoredProgress(*first[1:split]), awards)


async def list_progress_chunk(
    s: bulk.Conn, *, brand: str, target_code: str, cycle: str, after: str, limit: int
) -> list[StoredProgress]:
    """Up to `limit` rows of a cycle by member, after the member `after` ("" first)."""
    t = _PROGRESS
    rows = await bulk.fetch(
        s,
        f"close.progress_chunk.{limit}",
        lambda: (
            select(*_columns())
            .where(
                t.c.brand_code == bindparam("brand"),
                t.c.target_code == bindparam("target"),
                t.c.cycle == bindparam("cycle"),
                t.c.member_id > bindparam("after"),
            )
            .order_by(t.c.member_id)
            .limit(limit)
        ),
        {"brand": brand, "target": target_code, "cycle": cycle, "after": after},
    )
    return [StoredProgress(*r) for r in rows]


class RankedPage(NamedTuple):
    total: int  # rows of the cycle
    rows: list[StoredProgress]  # the page, and one more when more follow
    above: int  # rows ranked above the first of the page
    tied_before: int  # rows of the first's tie group before it (shown by earlier pages)


async def list_ranked_progress(
    s: bulk.Conn,
    *,
    brand: str,
    target_code: str,
    cycle: str,
    after: tuple[int, str] | None,
    limit: int,
) -> RankedPage:
    """A cycle's rows by rank key, highest first, then by member; after the (rank key,
    member) `after`; with what places the page's first row in the whole ranking."""
    orm = await bulk.orm(s)
    where = (
        ProgressRow.brand_code == brand,
        ProgressRow.target_code == target_code,
        ProgressRow.cycle == cycle,
    )
    rank_key, member = col(ProgressRow.rank_key), col(ProgressRow.member_id)

    async def count(*extra: Any) -> int:
        q = select(func.count()).select_from(ProgressRow).where(*where, *extra)
        return int((await orm.execute(q)).scalar_one())

    total = await count()
    q = select(ProgressRow).where(*where)
    if after is not None:
        q = q.where((rank_key < after[0]) | ((rank_key == after[0]) & (member > after[1])))
    q = q.order_by(rank_key.desc(), member).limit(limit)
    rows = [_stored(r) for r in (await orm.execute(q)).scalars().all()]
    if not rows:
        return RankedPage(total, rows, 0, 0)
    first = rows[0]
    above = await count(rank_key > first.rank_key)
    tied = await count(rank_key == first.rank_key, member < first.member_id)
    return RankedPage(total, rows, above, tied)
