"""The cycle clock (SPEC section 4): opens cycles, marks grace, closes them, on time and once.

Each transition is a row in ``cycle_event`` (brand, target, cycle, state) written once: the
database key makes "once" hold across crashes and several workers. A tick looks back from
the current cycle to the last one already closed, so a worker that was down catches up on
everything it missed. Closing runs ``close_cycle`` (itself idempotent) before the CLOSED
event is written, so a crash in between only repeats a close that adds nothing.

A failure stays where it happens: a cycle whose work fails (or a target whose definition
cannot be used) is held through application.cycles, with a reason its brand reads in
ListCycles, and tried again on a later tick; every other cycle of the tick goes on, of the
same brand and of others. A held cycle is released once its work succeeds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.app import App
from attain_server.application import cycles
from attain_server.application.rewards import close_cycle
from attain_server.application.standings import load_definition
from attain_server.domain.model import CycleHold, Member, TargetDefinition, TargetState
from attain_server.domain.periods import Calendar, CycleNameError, CycleState, CycleWindow
from attain_server.domain.progress import new_state
from attain_server.store.progress import progress_params
from attain_server.store.tables import (
    BrandRow,
    CycleEventRow,
    MemberRow,
    ProgressRow,
    TargetRow,
)
from attain_server.store.targets import load_member_target_values as load_member_values
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


@dataclass(frozen=True, slots=True)
class _Target:
    definition: TargetDefinition
    calendar: Calendar
    active: bool
    version: int

    @property
    def code(self) -> str:
        return self.definition.code


# What each step does, as a held cycle's reason names it.
_WORK = {
    CycleState.OPEN: "open",
    CycleState.GRACE: "start the grace of",
    CycleState.CLOSED: "close",
}


async def tick(
    app: App, now: datetime | None = None, *, only: Collection[str] | None = None
) -> list[Transition]:
    """Brings every cycle of every brand (or of the brands named in `only`) up to date with
    ``now``; returns what it did."""
    now = now or app.now()
    async with app.db.read() as s:
        q = select(BrandRow)
        if only is not None:
            q = q.where(col(BrandRow.code).in_(sorted(only)))
        brands = (await s.exec(q.order_by(col(BrandRow.code)))).all()
    done: list[Transition] = []
    for brand in brands:
        try:
            done += await tick_brand(app, brand.code, ZoneInfo(brand.time_zone), now)
        except Exception:
            # Whatever fails for one brand (beyond one cycle, which tick_brand holds) is its
            # own: every other brand's cycles still open and close on this tick.
            log.exception("cycle clock failed for a brand; the next tick retries", brand=brand.code)
    return done


async def tick_brand(app: App, brand: str, zone: ZoneInfo, now: datetime) -> list[Transition]:
    """Brings the brand's cycles up to date. A cycle (or a target) whose work fails is held
    (application.cycles) and tried again later; every other cycle goes on."""
    held = await cycles.cycle_holds(db=app.db, brand=brand)
    failed: list[tuple[str, int, Exception]] = []
    async with app.db.read() as s:
        listed = (
            await s.exec(
                select(TargetRow.code, TargetRow.version, TargetRow.state).where(
                    TargetRow.brand_code == brand
                )
            )
        ).all()
        targets: list[_Target] = []
        for code, version, state in listed:
            hold = held.get((code, ""))
            if hold is not None and not hold.due(now, version):
                continue
            try:
                # Parsed once per version, in the cache GetProgress uses.
                definition, calendar = await load_definition(s, brand, code, zone, version)
            except SQLAlchemyError:
                raise  # the database's trouble, not the target's: the brand's tick fails
            except Exception as error:  # its definition cannot be used: hold the whole target
                failed.append((code, version, error))
                continue
            targets.append(
                _Target(definition, calendar, state == TargetState.ACTIVE.value, version)
            )
        plans, recorded = await _unfinished(s, brand, now, targets)
    for code, version, problem in failed:
        await cycles.hold_cycle(
            db=app.db,
            brand=brand,
            target_code=code,
            cycle="",
            target_version=version,
            error=problem,
            work=f"read target {code}",
            now=now,
        )
    done: list[Transition] = []
    for target, windows in zip(targets, plans, strict=True):
        if (target.code, "") in held:
            await cycles.release_cycle(db=app.db, brand=brand, target_code=target.code, cycle="")
        for window in await _with_held(app, brand, target, windows, held, now):
            done += await _advance(app, brand, target, window, now, recorded, held)
    if done:
        # Live streams read only when told: an opened cycle joins the members' cards, a
        # closed one brought its close-time awards.
        await app.brand_changed(brand)
    return done


async def _with_held(
    app: App,
    brand: str,
    target: _Target,
    windows: list[CycleWindow],
    held: dict[tuple[str, str], CycleHold],
    now: datetime,
) -> list[CycleWindow]:
    """The target's unfinished cycles and its held ones, oldest first. A held cycle may be
    older than the newest closed one, where the look back stops; one that is no longer a
    started cycle of the target (its period changed) has nothing left to do: released."""
    names = {w.name for w in windows}
    extra: list[CycleWindow] = []
    for code, cycle in held:
        if code != target.code or not cycle or cycle in names:
            continue
        try:
            window = target.calendar.cycle_named(cycle)
        except CycleNameError:
            window = None
        if window is None or window.start_time > now:
            await cycles.release_cycle(db=app.db, brand=brand, target_code=code, cycle=cycle)
            continue
        extra.append(window)
    if not extra:
        return windows
    return sorted([*windows, *extra], key=lambda w: w.start_time)


async def _advance(
    app: App,
    brand: str,
    target: _Target,
    window: CycleWindow,
    now: datetime,
    recorded: set[tuple[str, str, str]],
    held: dict[tuple[str, str], CycleHold],
) -> list[Transition]:
    """Does the cycle's steps not recorded yet. Any failure holds the cycle instead of
    ending the tick; success releases a hold it had."""
    hold = held.get((target.code, window.name))
    if hold is not None and not hold.due(now, target.version):
        return []  # backing off: tried again later, or at once when the target changes
    definition = target.definition
    state = window.state_at(now)
    steps = [CycleState.OPEN]
    if state in (CycleState.GRACE, CycleState.CLOSED) and definition.offset_days:
        steps.append(CycleState.GRACE)
    if state is CycleState.CLOSED:
        steps.append(CycleState.CLOSED)
    done: list[Transition] = []
    step = steps[0]
    try:
        for step in steps:
            if (definition.code, window.name, step.value) in recorded:
                continue
            if step is CycleState.OPEN and target.active and state is CycleState.OPEN:
                await open_rows(app, brand, definition, window)
            if step is CycleState.CLOSED:
                await close_cycle(
                    db=app.db, brand=brand, target_code=definition.code, cycle=window.name, now=now
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
    except Exception as exc:
        await cycles.hold_cycle(
            db=app.db,
            brand=brand,
            target_code=definition.code,
            cycle=window.name,
            target_version=target.version,
            error=exc,
            work=f"{_WORK[step]} cycle {window.name}",
            now=now,
        )
        return done
    if hold is not None:
        await cycles.release_cycle(
            db=app.db, brand=brand, target_code=definition.code, cycle=window.name
        )
    return done


async def _unfinished(
    s: AsyncSession,
    brand: str,
    now: datetime,
    targets: Sequence[_Target],
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
        i: target.calendar.latest_started(now) for i, target in enumerate(targets)
    }
    while True:
        step: dict[int, list[CycleWindow]] = {}
        for i, window in cursor.items():
            calendar = targets[i].calendar
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
        codes = sorted({targets[i].code for i in step})
        names = sorted({w.name for windows in step.values() for w in windows})
        rows = (
            await s.exec(
                select(CycleEventRow.target_code, CycleEventRow.cycle, CycleEventRow.state).where(
                    CycleEventRow.brand_code == brand,
                    col(CycleEventRow.target_code).in_(codes),
                    col(CycleEventRow.cycle).in_(names),
                )
            )
        ).all()
        recorded.update((code, cycle, state) for code, cycle, state in rows)
        for i, windows in step.items():
            code = targets[i].code
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
