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

from attain_server.domain.awards import Award, LedgerEntry, ProgressKey
from attain_server.domain.decimals import format_decimal, normalize
from attain_server.domain.model import IncentiveKind, RewardRule
from attain_server.domain.rewards import Due, capped
from attain_server.store import awards as award_store
from attain_server.store.ledger import insert_ledger_entries
from attain_server.store.units import Conn


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


def _collect(out: dict[ProgressKey, Existing], awards: Iterable[Award]) -> None:
    """Adds awards of one cycle to the rows of `out` that exist."""
    for award in awards:
        existing = out.get((award.target_code, award.cycle, award.member_id))
        if existing is not None:
            existing.by_key[(award.rule_id, award.milestone)] = award


async def load_existing(
    s: Conn, brand: str, keys: Iterable[ProgressKey]
) -> dict[ProgressKey, Existing]:
    """The awards already given for these progress rows (any members)."""
    out: dict[ProgressKey, Existing] = {}
    by_cycle: dict[tuple[str, str], list[str]] = {}
    for tc, cy, member in sorted(set(keys)):
        by_cycle.setdefault((tc, cy), []).append(member)
        out[(tc, cy, member)] = Existing()
    for (tc, cy), members in by_cycle.items():
        found = await award_store.load_awards_of_members(
            s, brand=brand, target_code=tc, cycle=cy, members=members
        )
        _collect(out, found)
    return out


async def load_existing_range(
    s: Conn, brand: str, target_code: str, cycle: str, members: Sequence[str]
) -> dict[ProgressKey, Existing]:
    """The same for a sorted run of members of one cycle (a cycle-close chunk)."""
    out: dict[ProgressKey, Existing] = {(target_code, cycle, m): Existing() for m in members}
    if members:
        found = await award_store.load_awards_in_member_range(
            s, brand=brand, target_code=target_code, cycle=cycle, first=members[0], last=members[-1]
        )
        _collect(out, found)
    return out


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

    async def write(self, s: Conn) -> list[Award]:
        """Inserts awards, ledger entries and stream events; draws voucher codes."""
        if not self.new and not self.reversed:
            return []
        await self._draw_vouchers(s, [a for a in self.new if a.kind == "VOUCHER"])
        await award_store.insert_awards(s, self.new)
        await award_store.mark_awards_reversed(
            s, brand=self.brand, awards=self.reversed, now=self.now
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
        await insert_ledger_entries(s, entries)
        changed = self.new + self.reversed
        await award_store.append_award_events(s, brand=self.brand, awards=changed, now=self.now)
        return changed

    async def _draw_vouchers(self, s: Conn, awards: list[Award]) -> None:
        by_pool: dict[str, list[Award]] = {}
        for a in awards:
            by_pool.setdefault(a.voucher_pool, []).append(a)
        for pool, waiting in by_pool.items():
            await assign_codes(s, self.brand, pool, waiting, self.now)


async def assign_codes(
    s: Conn, brand: str, pool: str, awards: Sequence[Award], now: datetime
) -> int:
    """Gives each award one free code of the pool; awards left without one stay PENDING."""
    codes = await award_store.take_free_voucher_codes(s, brand=brand, pool=pool, count=len(awards))
    for award, code in zip(awards, codes, strict=False):
        award.voucher_code = code
        award.state = "GRANTED"
        award.pending_reason = ""
    for award in awards[len(codes) :]:
        award.state = "PENDING"
        award.pending_reason = (
            f"voucher pool {pool!r} has no free code; it is given when codes arrive"
        )
    await award_store.mark_vouchers_assigned(
        s, brand=brand, pool=pool, awards=awards[: len(codes)], now=now
    )
    return len(codes)


def _ledger(a: Award, points: int, kind: str, reason: str, now: datetime) -> LedgerEntry:
    return LedgerEntry(
        brand_code=a.brand_code,
        id=new_id(),
        member_id=a.member_id,
        program=a.program,
        points=points,
        kind=kind,
        award_id=a.id,
        request_id="",
        reason=reason,
        create_time=now,
    )
