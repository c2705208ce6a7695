"""The cycle repository: the clock's transitions (events), closes and holds of cycles."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.model import CycleHold

from . import _runner as runner
from .tables import CycleCloseRow, CycleEventRow, CycleHoldRow

# A transition the clock recorded: (target, cycle, state).
Recorded = tuple[str, str, str]


def _hold(row: CycleHoldRow) -> CycleHold:
    return CycleHold(
        target_code=row.target_code,
        cycle=row.cycle,
        reason=row.reason,
        target_version=row.target_version,
        attempts=row.attempts,
        first_failure_time=row.first_failure_time,
        last_failure_time=row.last_failure_time,
        next_attempt_time=row.next_attempt_time,
    )


async def brand_holds(s: AsyncSession, brand: str) -> list[CycleHold]:
    """Every hold of the brand (a handful at most: each is a failure someone must fix)."""
    rows = await s.execute(select(CycleHoldRow).where(CycleHoldRow.brand_code == brand))
    return [_hold(r) for r in rows.scalars().all()]


async def target_holds(
    s: AsyncSession, brand: str, target_code: str, cycles: Collection[str]
) -> dict[str, CycleHold]:
    """The holds of these cycles of one target, by cycle."""
    if not cycles:
        return {}
    rows = await s.execute(
        select(CycleHoldRow).where(
            CycleHoldRow.brand_code == brand,
            CycleHoldRow.target_code == target_code,
            col(CycleHoldRow.cycle).in_(sorted(cycles)),
        )
    )
    return {r.cycle: _hold(r) for r in rows.scalars().all()}


async def close_times(
    s: AsyncSession, brand: str, target_code: str, cycles: Collection[str]
) -> dict[str, datetime]:
    """When each of these cycles of one target was closed, for those that were."""
    if not cycles:
        return {}
    rows = await s.execute(
        select(CycleCloseRow.cycle, CycleCloseRow.close_time).where(
            CycleCloseRow.brand_code == brand,
            CycleCloseRow.target_code == target_code,
            col(CycleCloseRow.cycle).in_(sorted(cycles)),
        )
    )
    return {cycle: time for cycle, time in rows.all()}


async def put_hold(
    s: AsyncSession,
    *,
    brand: str,
    target_code: str,
    cycle: str,
    reason: str,
    target_version: int,
    now: datetime,
    retry_after: Callable[[int], timedelta],
) -> CycleHold:
    """Records one more failure of the cycle; `retry_after(attempts)` says when to try again."""
    row = await s.get(CycleHoldRow, (brand, target_code, cycle))
    if row is None:
        row = CycleHoldRow(
            brand_code=brand,
            target_code=target_code,
            cycle=cycle,
            reason=reason,
            target_version=target_version,
            attempts=1,
            first_failure_time=now,
            last_failure_time=now,
            next_attempt_time=now + retry_after(1),
        )
    else:
        row.reason = reason
        row.target_version = target_version
        row.attempts += 1
        row.last_failure_time = now
        row.next_attempt_time = now + retry_after(row.attempts)
    s.add(row)
    await s.flush()
    return _hold(row)


async def delete_hold(s: AsyncSession, brand: str, target_code: str, cycle: str) -> bool:
    """Forgets the hold; False when there was none."""
    result = await s.execute(
        delete(CycleHoldRow).where(
            col(CycleHoldRow.brand_code) == brand,
            col(CycleHoldRow.target_code) == target_code,
            col(CycleHoldRow.cycle) == cycle,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def recorded_transitions(
    s: AsyncSession, *, brand: str, target_codes: Collection[str], cycles: Collection[str]
) -> set[Recorded]:
    """The transitions recorded for these targets' cycles (every pair of the two lists)."""
    if not target_codes or not cycles:
        return set()
    rows = await s.execute(
        select(CycleEventRow.target_code, CycleEventRow.cycle, CycleEventRow.state).where(
            CycleEventRow.brand_code == brand,
            col(CycleEventRow.target_code).in_(sorted(target_codes)),
            col(CycleEventRow.cycle).in_(sorted(cycles)),
        )
    )
    return {(code, cycle, state) for code, cycle, state in rows.all()}


async def add_cycle_event(
    s: AsyncSession, *, brand: str, target_code: str, cycle: str, state: str, now: datetime
) -> None:
    """Records a transition; Conflict when it was recorded already (by another worker)."""
    s.add(
        CycleEventRow(brand_code=brand, target_code=target_code, cycle=cycle, state=state, time=now)
    )
    await s.flush()


async def cycle_close_exists(s: runner.Conn, *, brand: str, target_code: str, cycle: str) -> bool:
    """Whether the cycle's close was recorded (everything before it is done)."""
    orm = await runner.orm(s)
    return await orm.get(CycleCloseRow, (brand, target_code, cycle)) is not None


async def add_cycle_close(
    s: runner.Conn,
    *,
    brand: str,
    target_code: str,
    cycle: str,
    close_time: datetime,
    awards: int,
    reversals: int,
) -> None:
    """Records the close; a close recorded already fails as a conflict at commit."""
    orm = await runner.orm(s)
    orm.add(
        CycleCloseRow(
            brand_code=brand,
            target_code=target_code,
            cycle=cycle,
            close_time=close_time,
            awards=awards,
            reversals=reversals,
        )
    )
