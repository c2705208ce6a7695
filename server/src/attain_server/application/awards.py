"""Writing awards exactly once: award rows, ledger entries, voucher codes and the award stream.

Everything here runs inside the caller's unit of work (the ingest batch or a cycle-close
chunk), so an award, its ledger entry and its stream event commit together with the progress
that earned them, or not at all. The natural key (target, cycle, member, rule, milestone) is
unique in the database; a concurrent writer that wins it makes the caller's unit of work
fail and run again, and then it sees the award as already given.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.decimals import format_decimal, normalize
from attain_server.domain.model import IncentiveKind, RewardRule
from attain_server.domain.rewards import Due, capped
from attain_server.store import bulk
from attain_server.store.tables import (
    AwardEventRow,
    AwardRow,
    CounterRow,
    LedgerEntryRow,
    ProgramRow,
    VoucherRow,
)
from attain_server.store.upsert import insert as dialect_insert

ProgressKey = tuple[str, str, str]  # (target_code, cycle, member_id)
AWARD_STREAM = "award_event"
AWARD_TABLE = AwardRow.__table__  # type: ignore[attr-defined]
PROGRAM_TABLE = ProgramRow.__table__  # type: ignore[attr-defined]
AWARD_COLUMNS = tuple(AwardRow.model_fields)


@dataclass(slots=True)
class Award:
    """An award as plain data: the `award` table's columns. Units of work that handle awards
    in bulk (ingest batches, cycle close) use it instead of ORM rows, which cost several
    times more to build and are not needed: awards are inserted with Core statements."""

    brand_code: str
    id: str
    target_code: str
    cycle: str
    member_id: str
    rule_id: str
    milestone: str
    kind: str
    state: str
    points: int
    program: str
    voucher_pool: str
    voucher_code: str
    badge: str
    pending_reason: str
    create_time: datetime
    update_time: datetime

    @classmethod
    def from_row(cls, row: Any) -> Award:
        """From an ORM AwardRow or a Core row of the award table's columns."""
        return cls(*(getattr(row, name) for name in AWARD_COLUMNS))

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in AWARD_COLUMNS}


# Anything with the award table's columns as attributes.
AwardLike = AwardRow | Award


class _Ids:
    """Ids that sort in the order a process makes them: 24 hex digits, the first 12 the
    milliseconds since the epoch, the last 12 random bits that count up within a millisecond
    (as a ULID does). Lists paged by (time, id) then show the awards and ledger entries of one
    instant in the order they were given: one sale crossing 50% and 75% lists 50% first.
    Replicas start their counts at random points, so their ids still do not collide."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._count = 0

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        with self._lock:
            if ms > self._ms:
                # Half the space: a millisecond can count up 2**47 times before it overflows.
                self._ms, self._count = ms, secrets.randbits(47)
            else:  # the same millisecond, or a clock that stepped back: keep counting up
                self._count += 1
                if self._count >= 1 << 48:
                    self._ms, self._count = self._ms + 1, secrets.randbits(47)
            return f"{self._ms:012x}{self._count:012x}"


new_id = _Ids().next


def milestone_text(value: Decimal | None) -> str:
    """The milestone part of the natural key: "" for close rules, normalised otherwise."""
    return "" if value is None else format_decimal(normalize(value))


@dataclass(slots=True)
class Existing:
    """Awards already given for one progress row, by (rule, milestone)."""

    by_key: dict[tuple[str, str], Award] = field(default_factory=dict)

    def points_of(self, rule_id: str) -> int:
        return sum(
            a.points
            for (rid, _), a in self.by_key.items()
            if rid == rule_id and a.state != "REVERSED"
        )


def _collect(out: dict[ProgressKey, Existing], target_code: str, cycle: str, rows: Any) -> None:
    """Adds award rows of one cycle to the rows of `out` that exist."""
    for row in rows:
        existing = out.get((target_code, cycle, row.member_id))
        if existing is not None:
            existing.by_key[(row.rule_id, row.milestone)] = Award.from_row(row)


def _awards_of_cycle() -> Any:
    t = AWARD_TABLE
    return select(*(t.c[name] for name in AWARD_COLUMNS)).where(
        t.c.brand_code == bindparam("brand"),
        t.c.target_code == bindparam("target"),
        t.c.cycle == bindparam("cycle"),
    )


async def load_existing(
    s: bulk.Conn, brand: str, keys: Iterable[ProgressKey]
) -> dict[ProgressKey, Existing]:
    """The awards already given for these progress rows (any members)."""
    out: dict[ProgressKey, Existing] = {}
    by_cycle: dict[tuple[str, str], list[str]] = {}
    for tc, cy, member in sorted(set(keys)):
        by_cycle.setdefault((tc, cy), []).append(member)
        out[(tc, cy, member)] = Existing()
    member_id = AWARD_TABLE.c.member_id
    for (tc, cy), members in by_cycle.items():
        rows = await bulk.fetch_in(
            s,
            "award.existing",
            lambda n: _awards_of_cycle().where(bulk.in_list(member_id, n)),
            {"brand": brand, "target": tc, "cycle": cy},
            members,
        )
        _collect(out, tc, cy, rows)
    return out


async def load_existing_range(
    s: bulk.Conn, brand: str, target_code: str, cycle: str, members: Sequence[str]
) -> dict[ProgressKey, Existing]:
    """The same for a sorted run of members of one cycle (a cycle-close chunk): one range
    scan of the natural-key index instead of a long IN list."""
    out: dict[ProgressKey, Existing] = {(target_code, cycle, m): Existing() for m in members}
    if members:
        member_id = AWARD_TABLE.c.member_id
        rows = await bulk.fetch(
            s,
            "award.existing_range",
            lambda: _awards_of_cycle().where(
                member_id.between(bindparam("first"), bindparam("last"))
            ),
            {
                "brand": brand,
                "target": target_code,
                "cycle": cycle,
                "first": members[0],
                "last": members[-1],
            },
        )
        _collect(out, target_code, cycle, rows)
    return out


async def default_program(s: bulk.Conn, brand: str) -> str:
    p = PROGRAM_TABLE
    rows = await bulk.fetch(
        s,
        "program.default",
        lambda: select(p.c.code).where(p.c.brand_code == bindparam("brand"), p.c.is_default),
        {"brand": brand},
    )
    return str(rows[0].code) if rows else ""


async def awards_of(
    s: bulk.Conn, brand: str, target_code: str, cycle: str, member_id: str
) -> list[Award]:
    t = AWARD_TABLE
    rows = await bulk.fetch(
        s,
        "award.of_member",
        lambda: select(*(t.c[name] for name in AWARD_COLUMNS)).where(
            t.c.brand_code == bindparam("brand"),
            t.c.target_code == bindparam("target"),
            t.c.cycle == bindparam("cycle"),
            t.c.member_id == bindparam("member"),
        ),  # no ORDER BY: view_of puts the awards in the order they were earned
        {"brand": brand, "target": target_code, "cycle": cycle, "member": member_id},
    )
    return [Award.from_row(r) for r in rows]


class AwardBook:
    """Collects the awards of one unit of work, then writes them in a few statements."""

    def __init__(
        self, brand: str, now: datetime, existing: dict[ProgressKey, Existing], program: str
    ) -> None:
        self.brand = brand
        self.now = now
        self.existing = existing
        self.program = program
        self.new: list[Award] = []
        self.reversed: list[Award] = []

    def give(self, key: ProgressKey, rule: RewardRule, dues: Sequence[Due]) -> list[Award]:
        """Adds the dues not given yet (natural key), within the rule's cap; returns them."""
        seen = self.existing.setdefault(key, Existing())
        out = []
        for due in dues:
            natural = (rule.id, milestone_text(due.milestone))
            if natural in seen.by_key:
                continue
            allowed = capped(rule, due, seen.points_of(rule.id))
            if allowed is None:
                continue
            incentive = allowed.incentive
            is_points = incentive.kind is IncentiveKind.POINTS
            row = Award(
                self.brand,
                new_id(),
                key[0],
                key[1],
                key[2],
                rule.id,
                natural[1],
                incentive.kind.value,
                "GRANTED",
                incentive.points if is_points else 0,
                (rule.program or self.program) if is_points else "",
                incentive.voucher_pool,
                "",
                incentive.badge,
                "",
                self.now,
                self.now,
            )
            seen.by_key[natural] = row
            self.new.append(row)
            out.append(row)
        return out

    def reverse(self, award: Award) -> None:
        """Takes back a granted award at cycle close (REVERSE_AT_CLOSE rules)."""
        if award.state == "REVERSED":
            return
        award.state = "REVERSED"
        award.update_time = self.now
        self.reversed.append(award)

    async def write(self, s: bulk.Conn) -> list[Award]:
        """Inserts awards, ledger entries and stream events; draws voucher codes."""
        if not self.new and not self.reversed:
            return []
        await self._draw_vouchers(s, [a for a in self.new if a.kind == "VOUCHER"])
        t = AWARD_TABLE
        await bulk.executemany(
            s, "award.insert", lambda: insert(t), [a.as_dict() for a in self.new]
        )
        await bulk.update_rows(
            s,
            "award.reverse",
            t,
            (("brand_code", "b_brand"), ("id", "b_id")),
            ("state", "update_time"),
            [
                {"b_brand": self.brand, "b_id": a.id, "state": "REVERSED", "update_time": self.now}
                for a in self.reversed
            ],
        )
        entries = [
            _ledger(a, a.points, "AWARD", "award", self.now)
            for a in self.new
            if a.kind == "POINTS" and a.points
        ] + [
            _ledger(a, -a.points, "REVERSAL", "threshold no longer met at cycle close", self.now)
            for a in self.reversed
            if a.kind == "POINTS" and a.points
        ]
        await bulk.executemany(
            s,
            "ledger.insert",
            lambda: insert(LedgerEntryRow.__table__),  # type: ignore[attr-defined]
            entries,
        )
        changed = self.new + self.reversed
        await append_events(s, self.brand, changed, self.now)
        return changed

    async def _draw_vouchers(self, s: bulk.Conn, awards: list[Award]) -> None:
        if not awards:
            return
        orm = await bulk.orm(s)
        by_pool: dict[str, list[Award]] = {}
        for a in awards:
            by_pool.setdefault(a.voucher_pool, []).append(a)
        for pool, waiting in by_pool.items():
            await assign_codes(orm, self.brand, pool, waiting, self.now)


async def assign_codes(
    s: AsyncSession, brand: str, pool: str, awards: Sequence[AwardLike], now: datetime
) -> int:
    """Gives each award one free code of the pool; awards left without one stay PENDING."""
    q = (
        select(VoucherRow.code)
        .where(VoucherRow.brand_code == brand, VoucherRow.pool == pool, VoucherRow.award_id == "")
        .order_by(col(VoucherRow.load_time), col(VoucherRow.code))
        .limit(len(awards))
    )
    if s.bind is not None and s.bind.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    codes = list((await s.exec(q)).all())
    for award, code in zip(awards, codes, strict=False):
        award.voucher_code = code
        award.state = "GRANTED"
        award.pending_reason = ""
    for award in awards[len(codes) :]:
        award.state = "PENDING"
        award.pending_reason = (
            f"voucher pool {pool!r} has no free code; it is given when codes arrive"
        )
    if codes:
        table = VoucherRow.__table__  # type: ignore[attr-defined]
        await s.exec(
            update(table)
            .where(
                table.c.brand_code == bindparam("b_brand"),
                table.c.pool == bindparam("b_pool"),
                table.c.code == bindparam("b_code"),
                table.c.award_id == "",
            )
            .values(award_id=bindparam("b_award"), assign_time=bindparam("b_time")),
            params=[
                {
                    "b_brand": brand,
                    "b_pool": pool,
                    "b_code": a.voucher_code,
                    "b_award": a.id,
                    "b_time": now,
                }
                for a in awards[: len(codes)]
            ],
        )
    return len(codes)


async def append_events(
    s: bulk.Conn, brand: str, awards: Sequence[AwardLike], now: datetime
) -> None:
    """Appends stream events with sequence numbers taken under the counter's row lock."""
    if not awards:
        return
    first = await next_sequence(await bulk.orm(s), brand, AWARD_STREAM, len(awards))
    await bulk.executemany(
        s,
        "award_event.insert",
        lambda: insert(AwardEventRow.__table__),  # type: ignore[attr-defined]
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


async def next_sequence(s: AsyncSession, brand: str, name: str, count: int) -> int:
    """Reserves ``count`` numbers of a brand counter; returns the first. Holds the row lock."""
    table = CounterRow.__table__  # type: ignore[attr-defined]
    await s.exec(
        dialect_insert(s, table)
        .values(brand_code=brand, name=name, value=0)
        .on_conflict_do_nothing(index_elements=["brand_code", "name"])
    )
    result = await s.exec(
        update(table)
        .where(table.c.brand_code == brand, table.c.name == name)
        .values(value=table.c.value + count)
        .returning(table.c.value)
    )
    last = int(result.scalar_one())
    return last - count + 1


def _ledger(a: Award, points: int, kind: str, reason: str, now: datetime) -> dict[str, Any]:
    return {
        "brand_code": a.brand_code,
        "id": new_id(),
        "member_id": a.member_id,
        "program": a.program,
        "points": points,
        "kind": kind,
        "award_id": a.id,
        "request_id": "",
        "reason": reason,
        "create_time": now,
    }
