"""Cycles as the brand sees them (ListCycles) and as the clock holds them when it cannot
open or close one: kept with a reason the brand may read, tried again with a backoff, and
released once the work succeeds.

A failure of one cycle never stops the others: the clock asks here whether a held cycle is
due again, records each failure, and releases the hold when the work goes through (after an
admin fixed the target, say). The reason shown is the typed error's own message, or for an
unexpected error a generic text naming its class; the details go to the server log only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from attain_server.application.retry import retry_on_conflict
from attain_server.domain.errors import AttainError, NotFound
from attain_server.domain.model import CycleHold
from attain_server.domain.periods import CycleState, CycleWindow
from attain_server.metrics import CYCLE_HOLDS, CYCLE_RELEASES
from attain_server.store import brands, targets
from attain_server.store import cycles as holds
from attain_server.store.engine import Database

from .audiences import require_seen
from .paging import Page, next_token
from .targets import calendar_of

log = structlog.get_logger("attain.clock")

# A held cycle is tried again after a minute, then after twice as long each time, up to an
# hour: a broken cycle costs little, and one fixed by hand is closed soon (a new version of
# its target is tried at once).
FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=1)
MAX_REASON = 1000
MAX_ATTEMPTS = 3


# ---------------------------------------------------------------- ListCycles


@dataclass(frozen=True, slots=True)
class CycleView:
    """A cycle as ListCycles shows it: its window, and where it is in its life."""

    window: CycleWindow
    state: CycleState
    close_time: datetime | None = None
    hold_reason: str = ""


async def list_cycles(
    *, db: Database, brand: str, target_code: str, page: Page, now: datetime, member_id: str = ""
) -> tuple[list[CycleView], str]:
    """The target's cycles, newest first from the current (or next) one, paginated by position;
    for a member key (``member_id``) only if the target's audience includes it.

    A cycle is CLOSED once its close happened, not when its time is over: until then it is
    CLOSING, or HELD with the reason when the clock could not close it."""
    async with db.read() as s:
        time_zone = await brands.load_brand_time_zone(s, brand=brand)
        definition = await targets.find_target_definition(s, brand=brand, code=target_code)
        if time_zone is None or definition is None:
            raise NotFound("target", target_code)
        await require_seen(s, brand, definition, member_id)
        calendar = calendar_of(definition, time_zone)
        offset = page.offset()
        windows = calendar.recent(now, page.size + 1, offset)
        items = windows[: page.size]
        names = [w.name for w in items]
        closed = await holds.close_times(s, brand, target_code, names)
        held = await holds.target_holds(s, brand, target_code, names)
    views = [_cycle_view(w, now, closed.get(w.name), held.get(w.name)) for w in items]
    if member_id:  # a hold's reason may name another member and their sales: admins only
        views = [replace(v, hold_reason="") for v in views]
    return views, next_token(page, windows, [offset + len(items)])


def _cycle_view(
    window: CycleWindow, now: datetime, close_time: datetime | None, hold: CycleHold | None
) -> CycleView:
    if close_time is not None:
        return CycleView(window, CycleState.CLOSED, close_time)
    state = window.state_at(now)
    if state is CycleState.CLOSED:
        state = CycleState.HELD if hold is not None else CycleState.CLOSING
    return CycleView(window, state, None, hold.reason if hold is not None else "")


# ---------------------------------------------------------------- held cycles


def retry_after(attempts: int) -> timedelta:
    """How long the clock waits after the `attempts`-th failure in a row."""
    doublings: int = min(max(attempts - 1, 0), 16)
    return min(FIRST_RETRY * (1 << doublings), LAST_RETRY)


def reason_of(error: BaseException, work: str) -> str:
    """What the brand may read about a failure: a typed error's message (written for the
    caller), else a generic text with the exception's class and none of its message."""
    if isinstance(error, AttainError):
        text = error.message
    else:
        text = (
            f"the clock could not {work} ({type(error).__name__}); it tries again later, "
            "and the server log has the details"
        )
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


async def cycle_holds(*, db: Database, brand: str) -> dict[tuple[str, str], CycleHold]:
    """The brand's holds by (target, cycle); cycle "" for a whole target."""
    async with db.read() as s:
        found = await holds.brand_holds(s, brand)
    return {(h.target_code, h.cycle): h for h in found}


async def hold_cycle(
    *,
    db: Database,
    brand: str,
    target_code: str,
    cycle: str,
    target_version: int,
    error: BaseException,
    work: str,
    now: datetime,
) -> CycleHold:
    """Records that `work` ("close cycle 2026-11", say) failed with `error`, and logs it."""
    reason = reason_of(error, work)

    async def put() -> CycleHold:
        async with db.write() as s:
            return await holds.put_hold(
                s,
                brand=brand,
                target_code=target_code,
                cycle=cycle,
                reason=reason,
                target_version=target_version,
                now=now,
                retry_after=retry_after,
            )

    # Another worker may record the first failure at the same time.
    hold = await retry_on_conflict(put, what="hold a cycle", attempts=MAX_ATTEMPTS)
    fields = {
        "brand": brand,
        "target": target_code,
        "cycle": cycle,
        "reason": reason,
        "attempts": hold.attempts,
        "retry_time": hold.next_attempt_time.isoformat(),
    }
    CYCLE_HOLDS.labels(brand=brand).inc()
    if isinstance(error, AttainError):
        log.warning("cycle held", **fields)
    else:  # unexpected: the traceback is for the operators, never for the brand
        log.error("cycle held", exc_info=error, **fields)
    return hold


async def release_cycle(*, db: Database, brand: str, target_code: str, cycle: str) -> bool:
    """Forgets the hold once its work succeeded; False when there was none."""
    async with db.write() as s:
        released = await holds.delete_hold(s, brand, target_code, cycle)
    if released:
        CYCLE_RELEASES.labels(brand=brand).inc()
        log.info("cycle released", brand=brand, target=target_code, cycle=cycle)
    return released
