"""The cycle clock (SPEC section 4): opens cycles, marks grace, closes them, on time and once.

Each transition is recorded once (application.clock): the database key makes "once" hold
across crashes and several workers. A tick looks back from the current cycle to the last one
already closed, so a worker that was down catches up on everything it missed. Closing runs
``close_cycle`` (itself idempotent) before the CLOSED event is written, so a crash in between
only repeats a close that adds nothing.

A failure stays where it happens: a cycle whose work fails (or a target whose definition
cannot be used) is held through application.cycles, with a reason its brand reads in
ListCycles, and tried again on a later tick; every other cycle of the tick goes on, of the
same brand and of others. A held cycle is released once its work succeeds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from attain_server.app import App
from attain_server.application import cycles
from attain_server.application.clock import (
    LOOK_BACK_STEP,
    MAX_LOOKBACK,
    ClockTarget,
    clock_brands,
    clock_plan,
    open_rows,
    record_transition,
)
from attain_server.application.rewards import close_cycle
from attain_server.domain.model import CycleHold
from attain_server.domain.periods import CycleNameError, CycleState, CycleWindow

__all__ = ["LOOK_BACK_STEP", "MAX_LOOKBACK", "Transition", "tick", "tick_brand"]

log = structlog.get_logger("attain.clock")


@dataclass(frozen=True, slots=True)
class Transition:
    brand: str
    target: str
    cycle: str
    state: str


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
    done: list[Transition] = []
    for brand in await clock_brands(db=app.db, only=only):
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
    plan = await clock_plan(db=app.db, brand=brand, zone=zone, now=now, held=held)
    for code, version, problem in plan.unusable:
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
    for target, windows in zip(plan.targets, plan.windows, strict=True):
        if (target.code, "") in held:
            await cycles.release_cycle(db=app.db, brand=brand, target_code=target.code, cycle="")
        for window in await _with_held(app, brand, target, windows, held, now):
            done += await _advance(app, brand, target, window, now, plan.recorded, held)
    if done:
        # Live streams read only when told: an opened cycle joins the members' cards, a
        # closed one brought its close-time awards.
        await app.brand_changed(brand)
    return done


async def _with_held(
    app: App,
    brand: str,
    target: ClockTarget,
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


def _steps(target: ClockTarget, state: CycleState) -> list[CycleState]:
    """The transitions a cycle in `state` has been through by now, in order."""
    steps = [CycleState.OPEN]
    if state in (CycleState.GRACE, CycleState.CLOSED) and target.definition.offset_days:
        steps.append(CycleState.GRACE)
    if state is CycleState.CLOSED:
        steps.append(CycleState.CLOSED)
    return steps


async def _step(
    app: App,
    brand: str,
    target: ClockTarget,
    window: CycleWindow,
    step: CycleState,
    now: datetime,
) -> Transition | None:
    """Does one step's work and records it; None when another worker recorded it first."""
    code = target.code
    if step is CycleState.OPEN and target.active and window.state_at(now) is CycleState.OPEN:
        await open_rows(
            db=app.db, brand=brand, target=target.definition, window=window, now=app.now()
        )
    if step is CycleState.CLOSED:
        await close_cycle(db=app.db, brand=brand, target_code=code, cycle=window.name, now=now)
    if not await record_transition(
        db=app.db, brand=brand, target_code=code, cycle=window.name, state=step.value, now=now
    ):
        return None
    log.info("cycle transition", brand=brand, target=code, cycle=window.name, state=step.value)
    return Transition(brand, code, window.name, step.value)


async def _advance(
    app: App,
    brand: str,
    target: ClockTarget,
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
    steps = _steps(target, window.state_at(now))
    done: list[Transition] = []
    step = steps[0]
    try:
        for step in steps:
            if (target.code, window.name, step.value) in recorded:
                continue
            transition = await _step(app, brand, target, window, step, now)
            if transition is not None:
                done.append(transition)
    except Exception as exc:
        await cycles.hold_cycle(
            db=app.db,
            brand=brand,
            target_code=target.code,
            cycle=window.name,
            target_version=target.version,
            error=exc,
            work=f"{_WORK[step]} cycle {window.name}",
            now=now,
        )
        return done
    if hold is not None:
        await cycles.release_cycle(
            db=app.db, brand=brand, target_code=target.code, cycle=window.name
        )
    return done
