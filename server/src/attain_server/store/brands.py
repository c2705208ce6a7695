"""The brand repository: what other aggregates read of a brand."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine

from . import bulk
from .tables import BrandRow

_BRAND_TABLE = BrandRow.__table__  # type: ignore[attr-defined]

# A brand's zone never changes once it exists (UpdateBrand changes only its name).
_ZONES: dict[tuple[Engine, str], ZoneInfo] = {}


async def brand_zone(s: bulk.Conn, brand: str) -> ZoneInfo | None:
    """The brand's time zone, read once per database; None when the brand does not exist."""
    key = (bulk.engine_of(s), brand)
    zone = _ZONES.get(key)
    if zone is None:
        zone = await read_brand_zone(s, brand)
        if zone is not None:
            _ZONES[key] = zone
    return zone


async def read_brand_zone(s: bulk.Conn, brand: str) -> ZoneInfo | None:
    """The brand's time zone as stored now; None when the brand does not exist."""
    b = _BRAND_TABLE
    rows = await bulk.fetch(
        s,
        "brand.zone",
        lambda: select(b.c.time_zone).where(b.c.code == bindparam("brand")),
        {"brand": brand},
    )
    return ZoneInfo(rows[0].time_zone) if rows else None
