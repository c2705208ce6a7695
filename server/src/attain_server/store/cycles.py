"""Cycle events, closes and holds, in SQL."""

from __future__ import annotations

from datetime import datetime

from . import bulk
from .tables import CycleCloseRow


async def cycle_close_exists(s: bulk.Conn, *, brand: str, target_code: str, cycle: str) -> bool:
    """Whether the cycle's close was recorded (everything before it is done)."""
    orm = await bulk.orm(s)
    return await orm.get(CycleCloseRow, (brand, target_code, cycle)) is not None


async def add_cycle_close(
    s: bulk.Conn,
    *,
    brand: str,
    target_code: str,
    cycle: str,
    close_time: datetime,
    awards: int,
    reversals: int,
) -> None:
    """Records the close; a close recorded already fails as a conflict at commit."""
    orm = await bulk.orm(s)
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
