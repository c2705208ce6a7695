"""The brand repository: brands, their programs and API keys."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .tables import BrandRow


class BrandZone(NamedTuple):
    """A brand's code and the IANA name of its time zone."""

    code: str
    time_zone: str


async def load_brand_time_zone(s: AsyncSession, *, brand: str) -> str | None:
    """The IANA name of the brand's time zone; None when the brand does not exist."""
    row = await s.get(BrandRow, brand)
    return row.time_zone if row is not None else None


async def list_brand_time_zones(
    s: AsyncSession, *, only: Collection[str] | None = None
) -> list[BrandZone]:
    """Every brand (or those named in `only`) by code, with its time zone."""
    q = select(BrandRow.code, BrandRow.time_zone)
    if only is not None:
        q = q.where(col(BrandRow.code).in_(sorted(only)))
    rows = await s.execute(q.order_by(col(BrandRow.code)))
    return [BrandZone(code, zone) for code, zone in rows.all()]
