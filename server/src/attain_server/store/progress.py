"""The progress repository: one row per (target, cycle, member) with its tallies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from .tables import ProgressRow
from .upsert import insert

_KEY = ["brand_code", "target_code", "cycle", "member_id"]


async def add_opening_progress_rows(
    s: AsyncSession, *, rows: Sequence[Mapping[str, object]]
) -> None:
    """Inserts rows as they open; a row that exists already (a sale opened it first) stays
    as it is."""
    if not rows:
        return
    table = ProgressRow.__table__  # type: ignore[attr-defined]
    await s.execute(insert(s, table).on_conflict_do_nothing(index_elements=_KEY), list(rows))
