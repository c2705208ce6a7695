"""Brand administration use cases: brands, keys, programs, members, targets and target values.

Each function is one unit of work (one database transaction) and takes keyword arguments
only. The brand always comes from the caller's principal, never from request data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Violations,
    quoted,
)
from attain_server.domain.model import (
    ApiKey,
    Brand,
    Member,
    Program,
    Role,
    Target,
    TargetDefinition,
    TargetState,
    TargetValue,
)
from attain_server.domain.periods import Calendar, CycleNameError
from attain_server.domain.validation import (
    MAX_CYCLE,
    MAX_MEMBER_GROUPS,
    MAX_TARGET_VALUES_PER_CALL,
    UnusableTarget,
    check_code,
    check_label,
    check_text,
    label_ok,
    target_calendar,
    validate_target,
    zone_error,
)
from attain_server.store.codec import from_document, to_document
from attain_server.store.engine import Database
from attain_server.store.tables import (
    ApiKeyRow,
    BrandRow,
    MemberRow,
    ProgramRow,
    TargetRow,
    TargetValueRow,
)
from attain_server.store.upsert import upsert_statement

from .audiences import audience_test, require_seen
from .auth import hash_secret, new_secret
from .paging import Page, next_token


def calendar_of(definition: TargetDefinition, time_zone: str) -> Calendar:
    """The target's cycles in its brand's zone; UnusableTarget when it has none."""
    return target_calendar(definition, ZoneInfo(time_zone))


# ---------------------------------------------------------------- conversions


def _brand(row: BrandRow) -> Brand:
    return Brand(row.code, row.display_name, row.time_zone, row.create_time)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        row.key_id, Role(row.role), row.member_id, row.label, row.create_time, row.revoke_time
    )


def _program(row: ProgramRow) -> Program:
    return Program(row.code, row.display_name, row.is_default, row.create_time)


def _member(row: MemberRow) -> Member:
    return Member(
        row.external_id,
        row.display_name,
        row.level,
        tuple(row.groups),
        row.create_time,
        row.update_time,
    )


def _target(row: TargetRow) -> Target:
    return Target(
        from_document(row.definition),
        TargetState(row.state),
        row.create_time,
        row.update_time,
        row.version,
    )


# ---------------------------------------------------------------- brands


async def create_brand(
    *,
    db: Database,
    code: str,
    time_zone: str,
    now: datetime,
    display_name: str = "",
    program_code: str = "POINTS",
) -> tuple[Brand, ApiKey, str]:
    """Operator use case: a brand, its default program and its first admin key (secret once)."""
    v = Violations()
    check_code(v, "code", code)
    check_code(v, "program", program_code)
    check_text(v, "display_name", display_name)
    if (why := zone_error(time_zone)) is not None:
        v.add("time_zone", why)
    v.raise_if_any()
    key_id, secret = new_secret()
    async with db.write() as s:
        s.add(
            BrandRow(
                code=code, display_name=display_name or code, time_zone=time_zone, create_time=now
            )
        )
        try:
            await s.flush()
        except IntegrityError as exc:
            raise AlreadyExists(f"brand {quoted(code)} already exists") from exc
        s.add(
            ProgramRow(
                brand_code=code,
                code=program_code,
                display_name=program_code,
                is_default=True,
                create_time=now,
            )
        )
        key = ApiKeyRow(
            brand_code=code,
            key_id=key_id,
            secret_hash=hash_secret(secret),
            role=Role.BRAND_ADMIN.value,
            label="first admin key",
            create_time=now,
        )
        s.add(key)
        brand = await s.get_one(BrandRow, code)
        return _brand(brand), _key(key), secret


async def _brand_row(s: AsyncSession, brand: str) -> BrandRow:
    row = await s.get(BrandRow, brand)
    if row is None:  # the key outlived its brand: treat as not found
        raise NotFound("brand", brand)
    return row


async def get_brand(*, db: Database, brand: str) -> Brand:
    async with db.read() as s:
        return _brand(await _brand_row(s, brand))


async def update_brand(*, db: Database, brand: str, display_name: str) -> Brand:
    v = Violations()
    check_text(v, "brand.display_name", display_name)
    v.raise_if_any()
    async with db.write() as s:
        row = await _brand_row(s, brand)
        row.display_name = display_name
        s.add(row)
        return _brand(row)


# ---------------------------------------------------------------- keys


async def create_api_key(
    *, db: Database, brand: str, role: Role | None, member_id: str, label: str, now: datetime
) -> tuple[ApiKey, str]:
    v = Violations()
    if role is None:
        v.add("role", "is required: ROLE_BRAND_ADMIN, ROLE_INGEST or ROLE_MEMBER")
    elif role is Role.MEMBER and not member_id:
        v.add("member_id", "is required for a ROLE_MEMBER key")
    elif role is not Role.MEMBER and member_id:
        v.add("member_id", "is only for ROLE_MEMBER keys: leave it empty")
    check_label(v, "member_id", member_id)
    check_text(v, "label", label)
    v.raise_if_any()
    assert role is not None
    key_id, secret = new_secret()
    async with db.write() as s:
        if role is Role.MEMBER and await s.get(MemberRow, (brand, member_id)) is None:
            raise InvalidArgument.one("member_id", f"unknown member {quoted(member_id)}")
        row = ApiKeyRow(
            brand_code=brand,
            key_id=key_id,
            secret_hash=hash_secret(secret),
            role=role.value,
            member_id=member_id,
            label=label,
            create_time=now,
        )
        s.add(row)
        return _key(row), secret


async def list_api_keys(*, db: Database, brand: str, page: Page) -> tuple[list[ApiKey], str]:
    async with db.read() as s:
        q = select(ApiKeyRow).where(ApiKeyRow.brand_code == brand)
        if page.after:
            q = q.where(col(ApiKeyRow.key_id) > page.key(str)[0])
        rows = list((await s.exec(q.order_by(col(ApiKeyRow.key_id)).limit(page.size + 1))).all())
    items = rows[: page.size]
    return [_key(r) for r in items], next_token(page, rows, [items[-1].key_id] if items else [])


async def revoke_api_key(*, db: Database, brand: str, key_id: str, now: datetime) -> ApiKey:
    async with db.write() as s:
        row = await s.get(ApiKeyRow, (brand, key_id))
        if row is None:
            raise NotFound("api key", key_id)
        if row.revoke_time is None:
            row.revoke_time = now
            s.add(row)
        return _key(row)


# ---------------------------------------------------------------- programs


async def create_program(*, db: Database, brand: str, program: Program, now: datetime) -> Program:
    v = Violations()
    check_code(v, "program.code", program.code)
    check_text(v, "program.display_name", program.display_name)
    v.raise_if_any()
    async with db.write() as s:
        if program.is_default:
            await _clear_default(s, brand)
        row = ProgramRow(
            brand_code=brand,
            code=program.code,
            display_name=program.display_name or program.code,
            is_default=program.is_default,
            create_time=now,
        )
        s.add(row)
        try:
            await s.flush()
        except IntegrityError as exc:
            raise AlreadyExists(f"program {quoted(program.code)} already exists") from exc
        return _program(row)


async def _clear_default(s: AsyncSession, brand: str) -> None:
    await s.exec(
        update(ProgramRow)
        .where(col(ProgramRow.brand_code) == brand, col(ProgramRow.is_default))
        .values(is_default=False)
    )


async def get_program(*, db: Database, brand: str, code: str) -> Program:
    async with db.read() as s:
        row = await s.get(ProgramRow, (brand, code))
        if row is None:
            raise NotFound("program", code)
        return _program(row)


async def list_programs(*, db: Database, brand: str, page: Page) -> tuple[list[Program], str]:
    async with db.read() as s:
        q = select(ProgramRow).where(ProgramRow.brand_code == brand)
        if page.after:
            q = q.where(col(ProgramRow.code) > page.key(str)[0])
        rows = list((await s.exec(q.order_by(col(ProgramRow.code)).limit(page.size + 1))).all())
    items = rows[: page.size]
    return [_program(r) for r in items], next_token(page, rows, [items[-1].code] if items else [])


async def program_codes(s: AsyncSession, brand: str) -> set[str]:
    rows = await s.exec(select(ProgramRow.code).where(ProgramRow.brand_code == brand))
    return set(rows.all())


async def update_program(
    *, db: Database, brand: str, code: str, display_name: str | None, make_default: bool | None
) -> Program:
    v = Violations()
    if display_name is not None:
        check_text(v, "program.display_name", display_name)
    if make_default is False:
        v.add("program.is_default", "make another program the default instead of unsetting it")
    v.raise_if_any()
    async with db.write() as s:
        row = await s.get(ProgramRow, (brand, code))
        if row is None:
            raise NotFound("program", code)
        if display_name is not None:
            row.display_name = display_name
        if make_default and not row.is_default:
            await _clear_default(s, brand)
            row.is_default = True
        s.add(row)
        try:
            await s.flush()
        except IntegrityError as exc:  # another replica made a default at the same moment
            raise Aborted("the default program changed concurrently: retry") from exc
        await s.refresh(row)
        return _program(row)


# ---------------------------------------------------------------- members


def check_member(v: Violations, m: Member, prefix: str = "member") -> None:
    check_label(v, f"{prefix}.external_id", m.external_id, required=True)
    check_text(v, f"{prefix}.display_name", m.display_name)
    check_label(v, f"{prefix}.level", m.level)
    if len(m.groups) > MAX_MEMBER_GROUPS:
        v.add(f"{prefix}.groups", f"a member may be in at most {MAX_MEMBER_GROUPS} groups")
        return
    seen: set[str] = set()
    for i, group in enumerate(m.groups):
        check_label(v, f"{prefix}.groups[{i}]", group, required=True)
        if group in seen:
            v.add(f"{prefix}.groups[{i}]", f"{quoted(group)} is listed twice")
        seen.add(group)


async def upsert_member(
    *, db: Database, brand: str, member: Member, now: datetime
) -> tuple[Member, bool]:
    v = Violations()
    check_member(v, member)
    v.raise_if_any()
    table = MemberRow.__table__  # type: ignore[attr-defined]
    async with db.write() as s:
        stmt = upsert_statement(
            s,
            table,
            keys=["brand_code", "external_id"],
            update=["display_name", "level", "groups", "update_time"],
        ).values(
            brand_code=brand,
            external_id=member.external_id,
            display_name=member.display_name,
            level=member.level,
            groups=list(member.groups),
            create_time=now,
            update_time=now,
        )
        await s.exec(stmt)
        row = await s.get_one(MemberRow, (brand, member.external_id), populate_existing=True)
        # create_time is only written by the INSERT branch: equal to now means it was new.
        return _member(row), row.create_time == now


async def get_member(*, db: Database, brand: str, external_id: str) -> Member:
    async with db.read() as s:
        row = await s.get(MemberRow, (brand, external_id))
        if row is None:
            raise NotFound("member", external_id)
        return _member(row)


async def list_members(
    *, db: Database, brand: str, page: Page, level: str = "", group: str = ""
) -> tuple[list[Member], str]:
    async with db.read() as s:
        q = select(MemberRow).where(MemberRow.brand_code == brand)
        if level:
            q = q.where(MemberRow.level == level)
        if page.after:
            q = q.where(col(MemberRow.external_id) > page.key(str)[0])
        q = q.order_by(col(MemberRow.external_id))
        if not group:
            rows = list((await s.exec(q.limit(page.size + 1))).all())
        else:
            # Groups live in a JSON list; filter in Python, reading in chunks.
            rows = []
            after = page.key(str)[0] if page.after else None
            while len(rows) <= page.size:
                chunk_q = q if after is None else q.where(col(MemberRow.external_id) > after)
                chunk = list((await s.exec(chunk_q.limit(1000))).all())
                if not chunk:
                    break
                rows.extend(r for r in chunk if group in r.groups)
                after = chunk[-1].external_id
            rows = rows[: page.size + 1]
    items = rows[: page.size]
    token = next_token(page, rows, [items[-1].external_id] if items else [])
    return [_member(r) for r in items], token


# ---------------------------------------------------------------- targets


async def create_target(
    *, db: Database, brand: str, definition: TargetDefinition, now: datetime
) -> Target:
    async with db.write() as s:
        await _brand_row(s, brand)
        validate_target(definition, programs=await program_codes(s, brand)).raise_if_any()
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
        try:
            await s.flush()
        except IntegrityError as exc:
            raise AlreadyExists(f"target {quoted(definition.code)} already exists") from exc
        return _target(row)


async def get_target(*, db: Database, brand: str, code: str, member_id: str = "") -> Target:
    """The target; for a member key (``member_id``) only if its audience includes it."""
    async with db.read() as s:
        target = _target(await _target_row(s, brand, code))
        await require_seen(s, brand, target.definition, member_id)
        return target


async def _target_row(s: AsyncSession, brand: str, code: str) -> TargetRow:
    row = await s.get(TargetRow, (brand, code))
    if row is None:
        raise NotFound("target", code)
    return row


async def list_targets(
    *, db: Database, brand: str, page: Page, show_archived: bool = False, member_id: str = ""
) -> tuple[list[Target], str]:
    """The brand's targets by code; for a member key (``member_id``) those whose audience
    includes it, read on until the page is full."""
    async with db.read() as s:
        q = select(TargetRow).where(TargetRow.brand_code == brand)
        if not show_archived:
            q = q.where(TargetRow.state == TargetState.ACTIVE.value)
        seen = await audience_test(s, brand, member_id)
        after = page.key(str)[0] if page.after else None
        found: list[Target] = []
        while len(found) <= page.size:
            chunk_q = q if after is None else q.where(col(TargetRow.code) > after)
            chunk = (await s.exec(chunk_q.order_by(col(TargetRow.code)).limit(page.size + 1))).all()
            found.extend(t for t in map(_target, chunk) if seen(t.definition))
            if len(chunk) <= page.size:
                break
            after = chunk[-1].code
    found = found[: page.size + 1]
    items = found[: page.size]
    return items, next_token(page, found, [items[-1].code] if items else [])


UPDATABLE_TARGET_FIELDS = (
    "display_name",
    "description",
    "criteria",
    "period",
    "offset_days",
    "audience",
    "rules",
)


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
        row = await _target_row(s, brand, code)
        current = _target(row)
        if etag and etag != current.etag:
            raise Aborted(
                f"target {code!r} changed since it was read (etag {current.etag}, "
                f"given {etag}): read it again",
                reason="ETAG_MISMATCH",
            )
        if current.state is TargetState.ARCHIVED:
            raise FailedPrecondition(f"target {code!r} is archived", reason="ARCHIVED")
        new = dataclasses.replace(current.definition, **changes)
        validate_target(new, programs=await program_codes(s, brand)).raise_if_any()
        result = await s.exec(
            update(TargetRow)
            .where(
                col(TargetRow.brand_code) == brand,
                col(TargetRow.code) == code,
                col(TargetRow.version) == row.version,
            )
            .values(definition=to_document(new), version=row.version + 1, update_time=now)
        )
        if result.rowcount != 1:  # a concurrent update won between our read and write
            raise Aborted(
                f"target {code!r} changed concurrently: retry", reason="CONCURRENT_UPDATE"
            )
        await s.refresh(row)
        return _target(row)


async def archive_target(*, db: Database, brand: str, code: str, now: datetime) -> Target:
    async with db.write() as s:
        row = await _target_row(s, brand, code)
        if row.state != TargetState.ARCHIVED.value:
            row.state = TargetState.ARCHIVED.value
            row.version += 1
            row.update_time = now
            s.add(row)
        return _target(row)


# ---------------------------------------------------------------- target values


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
        brand_row = await _brand_row(s, brand)
        members: set[str] = set()
        # Only ids that could be a member's are asked for (PostgreSQL refuses a NUL in a
        # parameter); check() says what is wrong with the others.
        for chunk in _chunks(sorted(m for m in member_ids if m and label_ok(m)), 500):
            found = await s.exec(
                select(MemberRow.external_id).where(
                    MemberRow.brand_code == brand, col(MemberRow.external_id).in_(chunk)
                )
            )
            members.update(found.all())
        return cls(s, brand, brand_row.time_zone, members)

    async def check(self, tv: TargetValue) -> tuple[TargetValue, list[tuple[str, str]]]:
        """The value with its criterion resolved (the target's first by default), and what
        is wrong with it as (field, reason) pairs; no pairs means it may be stored."""
        problems = _value_shape(tv)
        if problems:  # nothing that could name a row is looked up
            return tv, problems
        if tv.target_code not in self._targets:
            trow = await self._s.get(TargetRow, (self._brand, tv.target_code))
            self._targets[tv.target_code] = from_document(trow.definition) if trow else None
        definition = self._targets[tv.target_code]
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
    if not values:
        return
    table = TargetValueRow.__table__  # type: ignore[attr-defined]
    await s.exec(
        upsert_statement(
            s,
            table,
            keys=["brand_code", "target_code", "cycle", "member_id", "criterion_id"],
            update=["value", "update_time"],
        ),
        params=[
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
        checker = await TargetValueCheck.load(s, brand, {tv.member_id for tv in values})
        resolved: list[TargetValue] = []
        seen: set[tuple[str, str, str, str]] = set()
        for i, tv in enumerate(values):
            f = f"values[{i}]"
            checked, problems = await checker.check(tv)
            for field_name, reason in problems:
                v.add(f"{f}.{field_name}", reason)
            key = (checked.target_code, checked.cycle, checked.member_id, checked.criterion_id)
            if key in seen:
                v.add(f, "sets the same member, target, cycle and criterion as an earlier entry")
            seen.add(key)
            resolved.append(checked)
        v.raise_if_any()
        existing: dict[tuple[str, str, str, str], Decimal] = {}
        for (target_code, cycle), group in _group(resolved).items():
            rows = await s.exec(
                select(TargetValueRow).where(
                    TargetValueRow.brand_code == brand,
                    TargetValueRow.target_code == target_code,
                    TargetValueRow.cycle == cycle,
                    col(TargetValueRow.member_id).in_({tv.member_id for tv in group}),
                )
            )
            for r in rows.all():
                existing[(r.target_code, r.cycle, r.member_id, r.criterion_id)] = r.value
        changed = [
            tv
            for tv in resolved
            if existing.get((tv.target_code, tv.cycle, tv.member_id, tv.criterion_id)) != tv.value
        ]
        await upsert_target_values(s, brand, changed, now)
        return len(changed), len(resolved) - len(changed)


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _group(values: Sequence[TargetValue]) -> dict[tuple[str, str], list[TargetValue]]:
    groups: dict[tuple[str, str], list[TargetValue]] = {}
    for tv in values:
        groups.setdefault((tv.target_code, tv.cycle), []).append(tv)
    return groups


async def list_target_values(
    *, db: Database, brand: str, target_code: str, cycle: str, page: Page
) -> tuple[list[TargetValue], str]:
    async with db.read() as s:
        await _target_row(s, brand, target_code)
        q = select(TargetValueRow).where(
            TargetValueRow.brand_code == brand, TargetValueRow.target_code == target_code
        )
        if cycle:
            q = q.where(TargetValueRow.cycle == cycle)
        if page.after:
            c, m, k = page.key(str, str, str)
            q = q.where(
                tuple_(TargetValueRow.cycle, TargetValueRow.member_id, TargetValueRow.criterion_id)
                > tuple_(c, m, k)
            )
        q = q.order_by(
            col(TargetValueRow.cycle),
            col(TargetValueRow.member_id),
            col(TargetValueRow.criterion_id),
        )
        rows = list((await s.exec(q.limit(page.size + 1))).all())
    items = rows[: page.size]
    key = [items[-1].cycle, items[-1].member_id, items[-1].criterion_id] if items else []
    return [
        TargetValue(r.member_id, r.target_code, r.cycle, r.criterion_id, r.value) for r in items
    ], next_token(page, rows, key)
