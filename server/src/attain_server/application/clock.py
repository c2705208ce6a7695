"""The cycle clock's use cases: which cycles to open or close, opening rows, transitions.

Each transition is a row (brand, target, cycle, state) written once: the database key makes
"once" hold across crashes and several workers. The worker decides when to call these; what
it reads and writes goes through here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.model import CycleHold, TargetDefinition, TargetState
from attain_server.domain.periods import Calendar, CycleState, CycleWindow
from attain_server.domain.progress import new_state
from attain_server.store import brands, members, progress, targets
from attain_server.store import cycles as store
from attain_server.store.brands import BrandZone
from attain_server.store.engine import Database
from attain_server.store.errors import Conflict, DatabaseError

from .standings import load_definition

__all__ = [
    "LOOK_BACK_STEP",
    "MAX_LOOKBACK",
    "BrandZone",
    "ClockPlan",
    "ClockTarget",
    "clock_brands",
    "clock_plan",
    "open_rows",
    "record_transition",
]

OPEN_CHUNK = 1000
# How far back a tick looks for cycles it has not finished (a safety bound, not a schedule).
MAX_LOOKBACK = 400
# Cycles per target whose events one statement reads, newest first.
LOOK_BACK_STEP = 8


@dataclass(frozen=True, slots=True)
class ClockTarget:
    """A target the clock advances: its definition and calendar, as of `version`."""

    definition: TargetDefinition
    calendar: Calendar
    active: bool
    version: int

    @property
    def code(self) -> str:
        return self.definition.code


@dataclass(slots=True)
class ClockPlan:
    """What a brand's tick has to do: per target, its started cycles back to the newest one
    already closed (oldest first), the transitions recorded for them, and the targets
    whose definition cannot be used (code, version, why)."""

    targets: list[ClockTarget] = field(default_factory=list)
    windows: list[list[CycleWindow]] = field(default_factory=list)
    recorded: set[tuple[str, str, str]] = field(default_factory=set)
    unusable: list[tuple[str, int, Exception]] = field(default_factory=list)


async def clock_brands(*, db: Database, only: Collection[str] | None = None) -> list[BrandZone]:
    """Every brand (or those named in `only`), in code order, with its time zone."""
    async with db.read() as s:
        return await brands.list_brand_time_zones(s, only=only)


async def clock_plan(
    *,
    db: Database,
    brand: str,
    zone: ZoneInfo,
    now: datetime,
    held: dict[tuple[str, str], CycleHold],
) -> ClockPlan:
    """The brand's targets and their unfinished cycles at `now`. A target held as a whole
    (`held`, cycle "") is left out until its hold is due again."""
    plan = ClockPlan()
    async with db.read() as s:
        for code, version, state in await targets.list_target_versions(s, brand=brand):
            hold = held.get((code, ""))
            if hold is not None and not hold.due(now, version):
                continue
            try:
                # Parsed once per version, in the cache GetProgress uses.
                definition, calendar = await load_definition(s, brand, code, zone, version)
            except DatabaseError:
                raise  # the database's trouble, not the target's: the brand's tick fails
            except Exception as error:  # its definition cannot be used: hold the whole target
                plan.unusable.append((code, version, error))
                continue
            active = state == TargetState.ACTIVE.value
            plan.targets.append(ClockTarget(definition, calendar, active, version))
        plan.windows, plan.recorded = await _unfinished(s, brand, now, plan.targets)
    return plan


def _look_back(
    target: ClockTarget, window: CycleWindow | None, found: int
) -> tuple[list[CycleWindow], CycleWindow | None]:
    """Up to LOOK_BACK_STEP cycles from `window` back (`found` seen already), and the next
    older one to look at, or None when the look back ends."""
    windows: list[CycleWindow] = []
    while window is not None and len(windows) < LOOK_BACK_STEP:
        if found + len(windows) >= MAX_LOOKBACK:
            return windows, None
        windows.append(window)
        window = target.calendar.preceding(window)
    return windows, window


async def _unfinished(
    s: AsyncSession, brand: str, now: datetime, targets: Sequence[ClockTarget]
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
            windows, cursor[i] = _look_back(targets[i], window, len(found[i]))
            if windows:
                step[i] = windows
        if not step:
            break
        recorded |= await store.recorded_transitions(
            s,
            brand=brand,
            target_codes={targets[i].code for i in step},
            cycles={w.name for windows in step.values() for w in windows},
        )
        for i, windows in step.items():
            code = targets[i].code
            for window in windows:
                if (code, window.name, CycleState.CLOSED.value) in recorded:
                    cursor[i] = None  # the newest closed one: nothing older is unfinished
                    break
                found[i].append(window)
        cursor = {i: window for i, window in cursor.items() if window is not None}
    return [windows[::-1] for windows in found], recorded


async def record_transition(
    *, db: Database, brand: str, target_code: str, cycle: str, state: str, now: datetime
) -> bool:
    """Records that the cycle reached `state`; False when another worker recorded it first."""
    try:
        async with db.write() as s:
            await store.add_cycle_event(
                s, brand=brand, target_code=target_code, cycle=cycle, state=state, now=now
            )
    except Conflict:
        return False
    return True


async def open_rows(
    *, db: Database, brand: str, target: TargetDefinition, window: CycleWindow, now: datetime
) -> int:
    """Progress rows at zero for the audience, with the level and values in force now; a
    row a sale opened first stays as it is. Returns how many rows it offered."""
    opened = 0
    after = ""
    while True:
        async with db.write() as s:
            chunk = await members.page_members_by_external_id(
                s, brand=brand, after=after, limit=OPEN_CHUNK
            )
            if not chunk:
                return opened
            after = chunk[-1].external_id
            audience = [m for m in chunk if target.audience.includes(m)]
            keys = [(target.code, window.name, m.external_id) for m in audience]
            values = await targets.load_member_target_values(s, brand, keys)
            states = [
                new_state(target, key, m.level, values.get(key, {}))
                for key, m in zip(keys, audience, strict=True)
            ]
            await progress.add_opening_progress_rows(s, brand=brand, states=states, now=now)
            opened += len(states)
