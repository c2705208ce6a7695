"""Per-member cycle values of targets: checked, set as one unit (all or none) and listed.

SetTargetValues and target files (the worker, row by row) share TargetValueCheck.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.errors import Violations, quoted
from attain_server.domain.model import TargetDefinition, TargetValue
from attain_server.domain.periods import Calendar, CycleNameError
from attain_server.domain.validation import (
    MAX_CYCLE,
    MAX_TARGET_VALUES_PER_CALL,
    UnusableTarget,
    check_code,
    check_label,
    label_ok,
)
from attain_server.store import members as member_store
from attain_server.store import targets as target_store
from attain_server.store.engine import Database
from attain_server.store.targets import TargetValueKey

from .brands import require_brand
from .paging import Page, next_token
from .targets import calendar_of, require_target


class TargetValueCheck:
    """Checks per-member cycle values against the brand's members, targets and cycles, inside
    one unit of work. SetTargetValues (all or none) and target files (row by row) share it."""

    def __init__(self, s: AsyncSession, brand: str, time_zone: str, members: set[str]) -> None:
        self._s, self._brand, self._zone, self._members = s, brand, time_zone, members
        self._targets: dict[str, TargetDefinition | None] = {}
        # Per target, once: a call may name it 10,000 times under the write lock.
        self._calendars: dict[str, Calendar | UnusableTarget] = {}

    @classmethod
    async def load(cls, s: AsyncSession, brand: str, member_ids: set[str]) -> TargetValueCheck:
        found = await require_brand(s, brand)
        # Only ids that could be a member's are asked for (PostgreSQL refuses a NUL in a
        # parameter); check() says what is wrong with the others.
        askable = (m for m in member_ids if m and label_ok(m))
        members = await member_store.existing_member_ids(s, brand=brand, ids=askable)
        return cls(s, brand, found.time_zone, members)

    async def check(self, tv: TargetValue) -> tuple[TargetValue, list[tuple[str, str]]]:
        """The value with its criterion resolved (the target's first by default), and what
        is wrong with it as (field, reason) pairs; no pairs means it may be stored."""
        problems = _value_shape(tv)
        if problems:  # nothing that could name a row is looked up
            return tv, problems
        definition = await self._definition(tv.target_code)
        if tv.member_id not in self._members:
            problems.append(("member_id", f"unknown member {quoted(tv.member_id)}"))
        if definition is None:
            problems.append(("target_code", f"unknown target {quoted(tv.target_code)}"))
            return tv, problems
        criterion_id = tv.criterion_id or definition.primary.id
        if criterion_id not in {c.id for c in definition.criteria}:
            problems.append(
                (
                    "criterion_id",
                    f"target {quoted(tv.target_code)} has no criterion {quoted(criterion_id)}",
                )
            )
        if tv.value <= 0:
            problems.append(("value", "must be greater than 0"))
        calendar = self._calendar(definition)
        if isinstance(calendar, UnusableTarget):
            problems.append(("target_code", calendar.message))
        else:
            try:
                calendar.cycle_named(tv.cycle)
            except CycleNameError as exc:
                problems.append(("cycle", str(exc)))
        return dataclasses.replace(tv, criterion_id=criterion_id), problems

    async def _definition(self, code: str) -> TargetDefinition | None:
        if code not in self._targets:
            target = await target_store.find_target(self._s, brand=self._brand, code=code)
            self._targets[code] = None if target is None else target.definition
        return self._targets[code]

    def _calendar(self, definition: TargetDefinition) -> Calendar | UnusableTarget:
        if definition.code not in self._calendars:
            try:
                self._calendars[definition.code] = calendar_of(definition, self._zone)
            except UnusableTarget as exc:
                self._calendars[definition.code] = exc
        return self._calendars[definition.code]


def _value_shape(tv: TargetValue) -> list[tuple[str, str]]:
    """What is wrong with a value's names before any of them is looked up."""
    v = Violations()
    check_label(v, "member_id", tv.member_id, required=True)
    check_code(v, "target_code", tv.target_code)
    check_label(v, "cycle", tv.cycle, required=True, limit=MAX_CYCLE)
    if tv.criterion_id:
        check_code(v, "criterion_id", tv.criterion_id)
    return [(item.field, item.reason) for item in v.items]


async def upsert_target_values(
    s: AsyncSession, brand: str, values: Sequence[TargetValue], now: datetime
) -> None:
    """Stores checked values (the most specific value of SPEC section 5), replacing old ones."""
    await target_store.upsert_target_values(s, brand=brand, values=values, now=now)


async def set_target_values(
    *,
    db: Database,
    brand: str,
    values: Sequence[TargetValue],
    now: datetime,
) -> tuple[int, int]:
    """Upserts per-member cycle values as one unit (all or none): returns (written, unchanged).

    A value names one of the target's cycles ("2026-11"); it may be set ahead of the cycle.
    """
    v = Violations()
    if not values:
        v.add("values", "give at least one value")
    if len(values) > MAX_TARGET_VALUES_PER_CALL:
        v.add("values", f"at most {MAX_TARGET_VALUES_PER_CALL:,} values per call")
    v.raise_if_any()
    async with db.write() as s:
        resolved = await _checked_values(s, brand, values)
        existing = await _stored_values(s, brand, resolved)
        changed = [tv for tv in resolved if existing.get(_key(tv)) != tv.value]
        await upsert_target_values(s, brand, changed, now)
        return len(changed), len(resolved) - len(changed)


async def _checked_values(
    s: AsyncSession, brand: str, values: Sequence[TargetValue]
) -> list[TargetValue]:
    """The values with their criteria resolved; InvalidArgument naming every problem."""
    v = Violations()
    checker = await TargetValueCheck.load(s, brand, {tv.member_id for tv in values})
    resolved: list[TargetValue] = []
    seen: set[TargetValueKey] = set()
    for i, tv in enumerate(values):
        f = f"values[{i}]"
        checked, problems = await checker.check(tv)
        for field_name, reason in problems:
            v.add(f"{f}.{field_name}", reason)
        key = _key(checked)
        if key in seen:
            v.add(f, "sets the same member, target, cycle and criterion as an earlier entry")
        seen.add(key)
        resolved.append(checked)
    v.raise_if_any()
    return resolved


async def _stored_values(
    s: AsyncSession, brand: str, values: Sequence[TargetValue]
) -> dict[TargetValueKey, Decimal]:
    """What is stored now under the keys of ``values``."""
    groups: dict[tuple[str, str], set[str]] = {}
    for tv in values:
        groups.setdefault((tv.target_code, tv.cycle), set()).add(tv.member_id)
    existing: dict[TargetValueKey, Decimal] = {}
    for (target_code, cycle), member_ids in groups.items():
        existing |= await target_store.stored_target_values(
            s, brand=brand, target_code=target_code, cycle=cycle, member_ids=member_ids
        )
    return existing


def _key(tv: TargetValue) -> TargetValueKey:
    return TargetValueKey(tv.target_code, tv.cycle, tv.member_id, tv.criterion_id)


async def list_target_values(
    *, db: Database, brand: str, target_code: str, cycle: str, page: Page
) -> tuple[list[TargetValue], str]:
    async with db.read() as s:
        await require_target(s, brand, target_code)
        after = None
        if page.after:
            c, m, k = page.key(str, str, str)
            after = TargetValueKey(target_code, c, m, k)
        rows = await target_store.list_target_values_after(
            s, brand=brand, target_code=target_code, cycle=cycle, after=after, limit=page.size + 1
        )
    items = rows[: page.size]
    key = [items[-1].cycle, items[-1].member_id, items[-1].criterion_id] if items else []
    return items, next_token(page, rows, key)
