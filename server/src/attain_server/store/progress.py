"""The progress repository: one row per (target, cycle, member) with its tallies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Integer, and_, bindparam, func, insert
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Row
from sqlalchemy.sql import Select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.awards import Award
from attain_server.domain.decimals import decimal_text
from attain_server.domain.model import TargetDefinition
from attain_server.domain.progress import (
    ProgressKey,
    ProgressState,
    stored_state,
    tallies_from_json,
    tallies_to_json,
)

from . import _runner as runner
from .awards import AWARD_COLUMNS
from .tables import AwardRow, ProgressRow, TargetRow
from .upsert import insert as upsert_insert

_KEY = ["brand_code", "target_code", "cycle", "member_id"]


async def add_opening_progress_rows(
    s: AsyncSession, *, brand: str, states: Sequence[ProgressState], now: datetime
) -> None:
    """Inserts the rows of ``states`` as they open; a row that exists already (a sale opened
    it first) stays as it is."""
    if not states:
        return
    rows = [_progress_params(brand, state, now) for state in states]
    table = ProgressRow.__table__  # type: ignore[attr-defined]
    await s.execute(upsert_insert(s, table).on_conflict_do_nothing(index_elements=_KEY), rows)


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


_VIEW_ROW = runner.Query(
    lambda: select(*_columns()).where(
        _PROGRESS.c.brand_code == bindparam("brand"),
        _PROGRESS.c.target_code == bindparam("target"),
        _PROGRESS.c.cycle == bindparam("cycle"),
        _PROGRESS.c.member_id == bindparam("member"),
    ),
    row=StoredProgress,
)


async def progress_view_row(
    s: runner.Conn, *, brand: str, target_code: str, cycle: str, member_id: str
) -> StoredProgress | None:
    """One member's row of a cycle; None when it has not opened."""
    rows = await _VIEW_ROW.rows(
        s, {"brand": brand, "target": target_code, "cycle": cycle, "member": member_id}
    )
    return rows[0] if rows else None


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


_VIEW = runner.Query(_progress_with_awards)


async def progress_view_with_awards(
    s: runner.Conn, *, brand: str, target_code: str, cycle: str, member_id: str
) -> ProgressWithAwards | None:
    """The target's version, the member's row of `cycle` and the row's awards, in one
    statement (one round trip on PostgreSQL); None when the target does not exist."""
    rows = await _VIEW.rows(
        s, {"brand": brand, "target": target_code, "cycle": cycle, "member": member_id}
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


class StateRow(NamedTuple):
    """A progress row's STATE_COLUMNS: what its in-memory state is made from, and no more."""

    target_code: str
    cycle: str
    member_id: str
    level: str
    target_values: dict[str, str]
    tallies: dict[str, Any]
    version: int
    attainment: Decimal
    complete: bool


_MEMBER_CHUNK = runner.Query(
    lambda: (
        select(*(_PROGRESS.c[name] for name in StateRow._fields))
        .where(
            _PROGRESS.c.brand_code == bindparam("brand"),
            _PROGRESS.c.target_code == bindparam("target"),
            _PROGRESS.c.cycle == bindparam("cycle"),
            _PROGRESS.c.member_id > bindparam("after"),
        )
        .order_by(_PROGRESS.c.member_id)
        .limit(bindparam("limit", type_=Integer))
    ),
    row=StateRow,
)


async def list_progress_chunk(
    s: runner.Conn, *, brand: str, target_code: str, cycle: str, after: str, limit: int
) -> list[StateRow]:
    """Up to `limit` rows of a cycle by member, after the member `after` ("" first): their
    state columns only (a close reads every row of a cycle and needs nothing else)."""
    params = {"brand": brand, "target": target_code, "cycle": cycle, "after": after}
    return await _MEMBER_CHUNK.rows(s, {**params, "limit": limit})


class RankedPage(NamedTuple):
    total: int  # rows of the cycle
    rows: list[StoredProgress]  # the page, and one more when more follow
    above: int  # rows ranked above the first of the page
    tied_before: int  # rows of the first's tie group before it (shown by earlier pages)


async def list_ranked_progress(
    s: runner.Conn,
    *,
    brand: str,
    target_code: str,
    cycle: str,
    after: tuple[int, str] | None,
    limit: int,
) -> RankedPage:
    """A cycle's rows by rank key, highest first, then by member; after the (rank key,
    member) `after`; with what places the page's first row in the whole ranking."""
    orm = await runner.orm(s)
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


PROGRESS_TABLE = ProgressRow.__table__  # type: ignore[attr-defined]


# The progress columns state_from_row reads.
STATE_COLUMNS = StateRow._fields


# An update matches the row as this batch read it (its version) and sets only what changes:
# the level and target values stay as the row opened with them.
_MATCH = (
    ("brand_code", "b_brand"),
    ("target_code", "b_target"),
    ("cycle", "b_cycle"),
    ("member_id", "b_member"),
    ("version", "b_version"),
)


_SET = ("tallies", "attainment", "rank_key", "complete", "version", "update_time")
_UPDATE_STATES = runner.UpdateRows(PROGRESS_TABLE, match=_MATCH, values=_SET)


def state_from_row(
    row: StateRow | StoredProgress | ProgressRow | Row[Any], target: TargetDefinition
) -> ProgressState:
    """The in-memory state of a progress row, from any read that has its state columns."""
    return stored_state(
        target,
        key=(row.target_code, row.cycle, row.member_id),
        level=row.level,
        target_values={k: Decimal(v) for k, v in row.target_values.items()},
        tallies=tallies_from_json(row.tallies),
        version=row.version,
        attainment=row.attainment,
        complete=row.complete,
    )


def _by_cycle(keys: Iterable[ProgressKey]) -> dict[tuple[str, str], list[str]]:
    """The keys' members per (target, cycle), sorted: one IN list per cycle."""
    out: dict[tuple[str, str], list[str]] = {}
    for tc, cy, member in sorted(keys):
        out.setdefault((tc, cy), []).append(member)
    return out


def _states_query(size: int) -> Select[Any]:
    p = PROGRESS_TABLE
    return (
        sql_select(*(p.c[name] for name in STATE_COLUMNS))
        .where(
            p.c.brand_code == bindparam("brand"),
            p.c.target_code == bindparam("target"),
            p.c.cycle == bindparam("cycle"),
            runner.in_list(p.c.member_id, size),
        )
        .order_by(p.c.member_id)
    )


_STATES = runner.QueryIn(_states_query)
# PostgreSQL arbitrates between replicas with row locks; SQLite has one writer, no locks.
_STATES_LOCKED = runner.QueryIn(
    _states_query, postgresql=lambda size: _states_query(size).with_for_update()
)


async def load_progress_states(
    s: runner.Conn,
    *,
    brand: str,
    keys: Iterable[ProgressKey],
    targets: Mapping[str, TargetDefinition],
    lock: bool,
) -> dict[ProgressKey, ProgressState]:
    """The stored rows among `keys`, read for the targets' current definitions; when `lock`,
    locked FOR UPDATE where the database has row locks (PostgreSQL; SQLite has one writer).
    Core rows, not ORM entities: they are written back with executemany, so no session
    needs to track them."""
    found: dict[ProgressKey, ProgressState] = {}
    query = _STATES_LOCKED if lock else _STATES
    for (tc, cy), members in sorted(_by_cycle(keys).items()):
        params = {"brand": brand, "target": tc, "cycle": cy}
        rows = await query.rows(s, params, members)
        for row in rows:
            found[(tc, cy, row.member_id)] = state_from_row(row, targets[tc])
    return found


def _progress_params(brand: str, p: ProgressState, now: datetime) -> dict[str, Any]:
    """The insert of a row opening now."""
    return {
        "brand_code": brand,
        "target_code": p.key[0],
        "cycle": p.key[1],
        "member_id": p.key[2],
        "level": p.level,
        "target_values": {k: decimal_text(v) for k, v in p.target_values.items()},
        "tallies": tallies_to_json(p.tallies),
        "attainment": p.attainment,
        "rank_key": p.rank_key,
        "complete": p.complete,
        "version": p.version,
        "open_time": now,  # a row is inserted in the unit of work that opens it
        "update_time": now,
    }


_INSERT_STATES = runner.Write(lambda: insert(PROGRESS_TABLE))


async def insert_progress_states(
    s: runner.Conn, *, brand: str, states: Sequence[ProgressState], now: datetime
) -> None:
    """Inserts rows that open now."""
    await _INSERT_STATES.run(s, [_progress_params(brand, p, now) for p in states])


async def update_progress_states(
    s: runner.Conn, *, brand: str, states: Sequence[ProgressState], now: datetime
) -> int:
    """Writes the states' tallies and standing where each row is still at the version before
    theirs (`version - 1`); returns how many rows changed."""
    params = [
        {
            "b_brand": brand,
            "b_target": p.key[0],
            "b_cycle": p.key[1],
            "b_member": p.key[2],
            "b_version": p.version - 1,
            "tallies": tallies_to_json(p.tallies),
            "attainment": p.attainment,
            "rank_key": p.rank_key,
            "complete": p.complete,
            "version": p.version,
            "update_time": now,
        }
        for p in states
    ]
    return await _UPDATE_STATES.run(s, params)
