"""The cycle clock (SPEC section 4): opens cycles, marks grace, closes them, on time and once.

Each transition is a row in ``cycle_event`` (brand, target, cycle, state) written once: the
database key makes "once" hold across crashes and several workers. A tick looks back from
the current cycle to the last one already closed, so a worker that was down catches up on
everything it missed. Closing runs ``close_cycle`` (itself idempotent) before the CLOSED
event is written, so a crash in between only repeats a close that adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.app import App
from attain_server.application.ingest import load_member_values, new_state, progress_params
from attain_server.application.rewards import close_cycle
from attain_server.application.standings import load_definition
from attain_server.domain.model import Member, TargetDefinition, TargetState
from attain_server.domain.periods import Calendar, CycleState, CycleWindow
from attain_server.store.tables import (
    BrandRow,
    CycleEventRow,
    MemberRow,
    ProgressRow,
    TargetRow,
)
from attain_server.store.upsert import insert as dialect_insert

log = structlog.get_logger("attain.clock")

OPEN_CHUNK = 1000
# How far back a tick looks for cycles it has not finished (a safety bound, not a schedule).
MAX_LOOKBACK = 400
# Cycles per target whose events one statement reads, newest first.
LOOK_BACK_STEP = 8


@dataclass(frozen=True, slots=True)
class Transition:
    brand: str
    target: str
    cycle: str
    state: str


async def tick(app: App, now: datetime | None = None) -> list[Transition]:
    """Brings every cycle of every brand up to date with ``now``; returns what it did."""
    now = now or app.now()
    async with app.db.read() as s:
        brands = (await s.exec(select(BrandRow))).all()
    done: list[Transition] = []
    for brand in brands:
        done += await tick_brand(app, brand.code, ZoneInfo(brand.time_zone), now)
    return done


async def tick_brand(app: App, brand: str, zone: ZoneInfo, now: datetime) -> list[Transition]:
    async with app.db.read() as s:
        listed = (
            await s.exec(
                select(TargetRow.code, TargetRow.version, TargetRow.state).where(
                    TargetRow.brand_code == brand
                )
            )
        ).all()
        targets = []
        for code, version, state in listed:
            # Parsed once per version, in the cache GetProgress uses.
            definition, calendar = await load_definition(s, brand, code, zone, version)
            targets.append((definition, calendar, state == TargetState.ACTIVE.value))
        plans, recorded = await _unfinished(s, brand, now, targets)
    done: list[Transition] = []
    for (definition, _calendar, active), windows in zip(targets, plans, strict=True):
        for window in windows:
            state = window.state_at(now)
            steps = [CycleState.OPEN]
            if state in (CycleState.GRACE, CycleState.CLOSED) and definition.offset_days:
                steps.append(CycleState.GRACE)
            if state is CycleState.CLOSED:
                steps.append(CycleState.CLOSED)
            for step in steps:
                if (definition.code, window.name, step.value) in recorded:
                    continue
                if step is CycleState.OPEN and active and state is CycleState.OPEN:
                    await open_rows(app, brand, definition, window)
                if step is CycleState.CLOSED:
                    await close_cycle(
                        db=app.db,
                        brand=brand,
                        target_code=definition.code,
                        cycle=window.name,
                        now=now,
                    )
                if await _record(app, brand, definition.code, window.name, step.value, now):
                    log.info(
                        "cycle transition",
                        brand=brand,
                        target=definition.code,
                        cycle=window.name,
                        state=step.value,
                    )
                    done.append(Transition(brand, definition.code, window.name, step.value))
    if done:
        # Live streams read only when told: an opened cycle joins the members' cards, a
        # closed one brought its close-time awards.
        await app.brand_changed(brand)
    return done


async def _unfinished(
    s: AsyncSession,
    brand: str,
    now: datetime,
    targets: Sequence[tuple[TargetDefinition, Calendar, bool]],
) -> tuple[list[list[CycleWindow]], set[tuple[str, str, str]]]:
    """Per target, its started cycles back to the newest one already closed, oldest first;
    and the recorded transitions of those cycles.

    Cycles are looked at LOOK_BACK_STEP at a time, newest first, reading only their events:
    one statement per step for every target of the brand, not the brand's whole history.
    Usually the first step finds a closed cycle for every target; a worker that was down
    for long goes back further, up to MAX_LOOKBACK cycles.
    """
    found: list[list[CycleWindow]] = [[] for _ in targets]
    recorded: set[tuple[str, str, str]] = set()
    # Per target still looking: the next (older) cycle to look at.
    cursor: dict[int, CycleWindow | None] = {
        i: calendar.latest_started(now) for i, (_, calendar, _) in enumerate(targets)
    }
    while True:
        step: dict[int, list[CycleWindow]] = {}
        for i, window in cursor.items():
            (_, calendar, _) = targets[i]
            windows: list[CycleWindow] = []
            while window is not None and len(windows) < LOOK_BACK_STEP:
                if len(found[i]) + len(windows) >= MAX_LOOKBACK:
                    window = None
                    break
                windows.append(window)
                window = calendar.preceding(window)
            cursor[i] = window
            if windows:
                step[i] = windows
        if not step:
            break
        codes = sorted({targets[i][0].code for i in step})
        cycles = sorted({w.name for windows in step.values() for w in windows})
        rows = (
            await s.exec(
                select(CycleEventRow.target_code, CycleEventRow.cycle, CycleEventRow.state).where(
                    CycleEventRow.brand_code == brand,
                    col(CycleEventRow.target_code).in_(codes),
                    col(CycleEventRow.cycle).in_(cycles),
                )
            )
        ).all()
        recorded.update((code, cycle, state) for code, cycle, state in rows)
        for i, windows in step.items():
            code = targets[i][0].code
            for window in windows:
                if (code, window.name, CycleState.CLOSED.value) in recorded:
                    cursor[i] = None  # the newest closed one: nothing older is unfinished
                    break
                found[i].append(window)
        cursor = {i: window for i, window in cursor.items() if window is not None}
    return [windows[::-1] for windows in found], recorded


async def _record(app: App, brand: str, target: str, cycle: str, state: str, now: datetime) -> bool:
    try:
        async with app.db.write() as s:
            s.add(
                CycleEventRow(
                    brand_code=brand, target_code=target, cycle=cycle, state=state, time=now
                )
            )
        return True
    except IntegrityError:  # another worker recorded it first
        return False


async def open_rows(app: App, brand: str, target: TargetDefinition, window: CycleWindow) -> int:
    """Progress rows at zero for the audience, with the level and values in force now."""
    opened = 0
    after = ""
    now = app.now()
    table = ProgressRow.__table__  # type: ignore[attr-defined]
    while True:
        async with app.db.write() as s:
            rows = (
                await s.exec(
                    select(MemberRow)
                    .where(MemberRow.brand_code == brand, col(MemberRow.external_id) > after)
                    .order_by(col(MemberRow.external_id))
                    .limit(OPEN_CHUNK)
                )
            ).all()
            if not rows:
                return opened
            after = rows[-1].external_id
            members = [
                Member(r.external_id, r.display_name, r.level, tuple(r.groups)) for r in rows
            ]
            members = [m for m in members if target.audience.includes(m)]
            keys = [(target.code, window.name, m.external_id) for m in members]
            values = await load_member_values(s, brand, keys)
            params = [
                progress_params(brand, new_state(target, key, m.level, values.get(key, {})), now)
                for key, m in zip(keys, members, strict=True)
            ]
            if params:
                # A row a sale opened first stays as it is.
                await s.exec(
                    dialect_insert(s, table).on_conflict_do_nothing(
                        index_elements=["brand_code", "target_code", "cycle", "member_id"]
                    ),
                    params=params,
                )
                opened += len(params)
