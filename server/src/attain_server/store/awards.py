"""Awards, their stream events and sequence counters, voucher codes and badges, in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, case, func, insert, update
from sqlmodel import col, select

from attain_server.domain.awards import Award

from . import _runner as runner
from . import pages
from .tables import AwardEventRow, AwardRow, CounterRow, VoucherRow
from .upsert import insert as dialect_insert

AWARD_COLUMNS = tuple(f.name for f in fields(Award))
AWARD_STREAM = "award_event"
_AWARD = AwardRow.__table__  # type: ignore[attr-defined]
_EVENT = AwardEventRow.__table__  # type: ignore[attr-defined]
_VOUCHER = VoucherRow.__table__  # type: ignore[attr-defined]
_COUNTER = CounterRow.__table__  # type: ignore[attr-defined]
_INSERT_CHUNK = 1000


def award_from_row(row: Any) -> Award:
    """From an ORM row or a Core row with the award table's columns."""
    return Award(*(getattr(row, name) for name in AWARD_COLUMNS))


def _award_params(a: Award) -> dict[str, Any]:
    return {name: getattr(a, name) for name in AWARD_COLUMNS}


def _awards_of_cycle() -> Any:
    t = _AWARD
    return select(*(t.c[name] for name in AWARD_COLUMNS)).where(
        t.c.brand_code == bindparam("brand"),
        t.c.target_code == bindparam("target"),
        t.c.cycle == bindparam("cycle"),
    )


_OF_MEMBERS = runner.QueryIn(
    lambda n: _awards_of_cycle().where(runner.in_list(_AWARD.c.member_id, n))
)


async def load_awards_of_members(
    s: runner.Conn, *, brand: str, target_code: str, cycle: str, members: Sequence[str]
) -> list[Award]:
    """The awards of these members in one cycle (an IN list)."""
    rows = await _OF_MEMBERS.rows(
        s, {"brand": brand, "target": target_code, "cycle": cycle}, members
    )
    return [award_from_row(r) for r in rows]


_IN_MEMBER_RANGE = runner.Query(
    lambda: _awards_of_cycle().where(
        _AWARD.c.member_id.between(bindparam("first"), bindparam("last"))
    )
)


async def load_awards_in_member_range(
    s: runner.Conn, *, brand: str, target_code: str, cycle: str, first: str, last: str
) -> list[Award]:
    """The awards of the members from `first` to `last` of one cycle: one range scan of the
    natural-key index instead of a long IN list (a cycle-close chunk)."""
    rows = await _IN_MEMBER_RANGE.rows(
        s, {"brand": brand, "target": target_code, "cycle": cycle, "first": first, "last": last}
    )
    return [award_from_row(r) for r in rows]


_OF_MEMBER = runner.Query(
    lambda: _awards_of_cycle().where(_AWARD.c.member_id == bindparam("member"))
)


async def load_member_awards(
    s: runner.Conn, *, brand: str, target_code: str, cycle: str, member_id: str
) -> list[Award]:
    """One progress row's awards, in no particular order."""
    rows = await _OF_MEMBER.rows(
        s, {"brand": brand, "target": target_code, "cycle": cycle, "member": member_id}
    )
    return [award_from_row(r) for r in rows]


_INSERT_AWARDS = runner.Write(lambda: insert(_AWARD))


async def insert_awards(s: runner.Conn, awards: Sequence[Award]) -> None:
    await _INSERT_AWARDS.run(s, [_award_params(a) for a in awards])


_MATCH_AWARD = (("brand_code", "b_brand"), ("id", "b_id"))
_REVERSE = runner.UpdateRows(_AWARD, match=_MATCH_AWARD, values=("state", "update_time"))


async def mark_awards_reversed(
    s: runner.Conn, *, brand: str, awards: Sequence[Award], now: datetime
) -> None:
    await _REVERSE.run(
        s,
        [{"b_brand": brand, "b_id": a.id, "state": "REVERSED", "update_time": now} for a in awards],
    )


_VOUCHER_GRANTED = runner.UpdateRows(
    _AWARD, match=_MATCH_AWARD, values=("state", "voucher_code", "pending_reason", "update_time")
)


async def save_voucher_grants(s: runner.Conn, *, brand: str, awards: Sequence[Award]) -> None:
    """Writes the voucher code, state and times of awards that waited for a code."""
    await _VOUCHER_GRANTED.run(
        s,
        [
            {
                "b_brand": brand,
                "b_id": a.id,
                "state": a.state,
                "voucher_code": a.voucher_code,
                "pending_reason": a.pending_reason,
                "update_time": a.update_time,
            }
            for a in awards
        ],
    )


async def load_pending_voucher_awards(
    s: runner.Conn, *, brand: str, pool: str, limit: int
) -> list[Award]:
    """Awards waiting for a code of the pool, oldest first."""
    orm = await runner.orm(s)
    q = (
        select(AwardRow)
        .where(AwardRow.brand_code == brand, AwardRow.voucher_pool == pool)
        .where(AwardRow.state == "PENDING")
        .order_by(col(AwardRow.create_time), col(AwardRow.id))
        .limit(limit)
    )
    return [award_from_row(r) for r in (await orm.execute(q)).scalars().all()]


class AwardPage(NamedTuple):
    awards: list[Award]
    resume: tuple[datetime, str] | None  # None: these were the last


async def list_award_page(
    s: runner.Conn,
    *,
    brand: str,
    size: int,
    after: tuple[datetime, str] | None,
    member_id: str = "",
    target_code: str = "",
    cycle: str = "",
    kind: str = "",
) -> AwardPage:
    """Awards in (create time, id) order, filtered by whichever of the filters is set."""
    q = select(AwardRow).where(AwardRow.brand_code == brand)
    for column, value in (
        (AwardRow.member_id, member_id),
        (AwardRow.target_code, target_code),
        (AwardRow.cycle, cycle),
        (AwardRow.kind, kind),
    ):
        if value:
            q = q.where(column == value)
    items, resume = await pages.by_time_then_id(
        await runner.orm(s),
        q,
        size=size,
        after=after,
        time_column=col(AwardRow.create_time),
        id_column=col(AwardRow.id),
    )
    return AwardPage([award_from_row(r) for r in items], resume)


# ---------------------------------------------------------------- the award stream


_INSERT_EVENTS = runner.Write(lambda: insert(_EVENT))


async def append_award_events(
    s: runner.Conn, *, brand: str, awards: Sequence[Award], now: datetime
) -> None:
    """Appends stream events with sequence numbers taken under the counter's row lock."""
    if not awards:
        return
    first = await next_sequence(s, brand=brand, name=AWARD_STREAM, count=len(awards))
    await _INSERT_EVENTS.run(
        s,
        [
            {
                "brand_code": brand,
                "seq": first + i,
                "award_id": a.id,
                "member_id": a.member_id,
                "create_time": now,
            }
            for i, a in enumerate(awards)
        ],
    )


async def next_sequence(s: runner.Conn, *, brand: str, name: str, count: int) -> int:
    """Reserves ``count`` numbers of a brand counter; returns the first. Holds the row lock."""
    orm = await runner.orm(s)
    t = _COUNTER
    await orm.execute(
        dialect_insert(orm, t)
        .values(brand_code=brand, name=name, value=0)
        .on_conflict_do_nothing(index_elements=["brand_code", "name"])
    )
    result = await orm.execute(
        update(t)
        .where(t.c.brand_code == brand, t.c.name == name)
        .values(value=t.c.value + count)
        .returning(t.c.value)
    )
    last = int(result.scalar_one())
    return last - count + 1


async def load_award_events(
    s: runner.Conn, *, brand: str, after: int, member_id: str, limit: int
) -> list[tuple[int, Award]]:
    """Stream events after ``after`` in sequence order, each with its award as it is now."""
    q = (
        select(AwardEventRow.seq, AwardRow)
        .join(
            AwardRow,
            (col(AwardRow.brand_code) == col(AwardEventRow.brand_code))
            & (col(AwardRow.id) == col(AwardEventRow.award_id)),
        )
        .where(AwardEventRow.brand_code == brand, col(AwardEventRow.seq) > after)
    )
    if member_id:
        q = q.where(AwardEventRow.member_id == member_id)
    orm = await runner.orm(s)
    rows = (await orm.execute(q.order_by(col(AwardEventRow.seq)).limit(limit))).all()
    return [(int(seq), award_from_row(award)) for seq, award in rows]


# ---------------------------------------------------------------- vouchers


async def take_free_voucher_codes(
    s: runner.Conn, *, brand: str, pool: str, count: int
) -> list[str]:
    """Up to ``count`` free codes of the pool, oldest first; on PostgreSQL locked for this
    unit of work, skipping those another writer holds."""
    orm = await runner.orm(s)
    q = (
        select(VoucherRow.code)
        .where(VoucherRow.brand_code == brand, VoucherRow.pool == pool, VoucherRow.award_id == "")
        .order_by(col(VoucherRow.load_time), col(VoucherRow.code))
        .limit(count)
    )
    if runner.engine_of(s).dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return [str(code) for code in (await orm.execute(q)).scalars().all()]


async def mark_vouchers_assigned(
    s: runner.Conn, *, brand: str, pool: str, awards: Sequence[Award], now: datetime
) -> None:
    """Marks each award's voucher code as held by that award."""
    if not awards:
        return
    t = _VOUCHER
    orm = await runner.orm(s)
    await orm.execute(
        update(t)
        .where(
            t.c.brand_code == bindparam("b_brand"),
            t.c.pool == bindparam("b_pool"),
            t.c.code == bindparam("b_code"),
            t.c.award_id == "",
        )
        .values(award_id=bindparam("b_award"), assign_time=bindparam("b_time")),
        [
            {
                "b_brand": brand,
                "b_pool": pool,
                "b_code": a.voucher_code,
                "b_award": a.id,
                "b_time": now,
            }
            for a in awards
        ],
    )


async def insert_voucher_codes(
    s: runner.Conn, *, brand: str, pool: str, codes: Sequence[str], now: datetime
) -> None:
    """Adds codes to a pool; codes it holds already are left as they are."""
    orm = await runner.orm(s)
    for i in range(0, len(codes), _INSERT_CHUNK):
        await orm.execute(
            dialect_insert(orm, _VOUCHER).on_conflict_do_nothing(
                index_elements=["brand_code", "pool", "code"]
            ),
            [
                {
                    "brand_code": brand,
                    "pool": pool,
                    "code": c,
                    "award_id": "",
                    "load_time": now,
                    "assign_time": None,
                }
                for c in codes[i : i + _INSERT_CHUNK]
            ],
        )


async def count_voucher_codes(
    s: runner.Conn, *, brand: str, pool: str, free_only: bool = False
) -> int:
    """Codes in the pool, or only those no award holds yet."""
    q = (
        select(func.count())
        .select_from(VoucherRow)
        .where(VoucherRow.brand_code == brand, VoucherRow.pool == pool)
    )
    if free_only:
        q = q.where(VoucherRow.award_id == "")
    orm = await runner.orm(s)
    return int((await orm.execute(q)).scalar_one())


class VoucherPoolCount(NamedTuple):
    pool: str
    total: int
    available: int


async def list_voucher_pool_counts(
    s: runner.Conn, *, brand: str, after: str, limit: int
) -> list[VoucherPoolCount]:
    """Pools by name after ``after`` ("" for the first), with their total and free codes."""
    q = (
        select(
            VoucherRow.pool,
            func.count(),
            func.sum(case((col(VoucherRow.award_id) == "", 1), else_=0)),
        )
        .where(VoucherRow.brand_code == brand)
        .group_by(col(VoucherRow.pool))
        .order_by(col(VoucherRow.pool))
    )
    if after:
        q = q.where(col(VoucherRow.pool) > after)
    orm = await runner.orm(s)
    rows = (await orm.execute(q.limit(limit))).all()
    return [VoucherPoolCount(str(p), int(t), int(a or 0)) for p, t, a in rows]
