"""The target repository: targets (their versioned definitions) and target values."""

from __future__ import annotations

from typing import NamedTuple

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from attain_server.domain.model import TargetDefinition

from .codec import from_document
from .tables import TargetRow


class TargetVersion(NamedTuple):
    """A target's code, its definition's version and its state (ACTIVE, ARCHIVED)."""

    code: str
    version: int
    state: str


async def list_target_versions(s: AsyncSession, *, brand: str) -> list[TargetVersion]:
    """Every target of the brand with its version and state (not its definition)."""
    rows = await s.execute(
        select(TargetRow.code, TargetRow.version, TargetRow.state).where(
            TargetRow.brand_code == brand
        )
    )
    return [TargetVersion(code, version, state) for code, version, state in rows.all()]


async def load_target_definition(
    s: AsyncSession, *, brand: str, code: str
) -> TargetDefinition | None:
    """The target's definition; None when the brand has no such target."""
    row = await s.get(TargetRow, (brand, code))
    return from_document(row.definition) if row is not None else None
