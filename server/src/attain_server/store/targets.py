"""The target repository: target definitions by version, and members' target values."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.sql import Select

from attain_server.domain.model import TargetDefinition, TargetState
from attain_server.domain.progress import ProgressKey

from . import bulk
from .codec import from_document
from .tables import TargetRow, TargetValueRow

_TARGET_TABLE = TargetRow.__table__  # type: ignore[attr-defined]
_TARGET_VALUE_TABLE = TargetValueRow.__table__  # type: ignore[attr-defined]


class TargetVersion(NamedTuple):
    """Which version of a target is stored, and its state."""

    code: str
    version: int
    state: TargetState


class VersionedDefinition(NamedTuple):
    """A target's stored definition at one version."""

    code: str
    version: int
    state: TargetState
    definition: TargetDefinition


async def load_target_versions(s: bulk.Conn, brand: str) -> list[TargetVersion]:
    """Every target of the brand (any state) with its current version."""
    t = _TARGET_TABLE
    rows = await bulk.fetch(
        s,
        "ingest.target_versions",
        lambda: select(t.c.code, t.c.version, t.c.state).where(
            t.c.brand_code == bindparam("brand")
        ),
        {"brand": brand},
    )
    return [TargetVersion(r.code, r.version, TargetState(r.state)) for r in rows]


async def load_target_definitions(
    s: bulk.Conn, brand: str, codes: Iterable[str]
) -> list[VersionedDefinition]:
    """The stored definitions of these targets of the brand, parsed."""
    t = _TARGET_TABLE
    rows = await bulk.fetch_in(
        s,
        "ingest.target_documents",
        lambda n: select(t.c.code, t.c.version, t.c.state, t.c.definition).where(
            t.c.brand_code == bindparam("brand"), bulk.in_list(t.c.code, n)
        ),
        {"brand": brand},
        codes,
    )
    return [
        VersionedDefinition(r.code, r.version, TargetState(r.state), from_document(r.definition))
        for r in rows
    ]


def _member_values_query(size: int) -> Select[Any]:
    v = _TARGET_VALUE_TABLE
    return select(v.c.member_id, v.c.criterion_id, v.c.value).where(
        v.c.brand_code == bindparam("brand"),
        v.c.target_code == bindparam("target"),
        v.c.cycle == bindparam("cycle"),
        bulk.in_list(v.c.member_id, size),
    )


async def load_member_target_values(
    s: bulk.Conn, brand: str, keys: Iterable[ProgressKey]
) -> dict[ProgressKey, dict[str, Decimal]]:
    """Per-member cycle values (from SetTargetValues or target files) of these progress
    rows, by criterion id; rows with none are left out."""
    out: dict[ProgressKey, dict[str, Decimal]] = {}
    by_cycle: dict[tuple[str, str], list[str]] = {}
    for tc, cy, member in sorted(keys):
        by_cycle.setdefault((tc, cy), []).append(member)
    for (tc, cy), members in by_cycle.items():
        params = {"brand": brand, "target": tc, "cycle": cy}
        rows = await bulk.fetch_in(s, "ingest.member_values", _member_values_query, params, members)
        for r in rows:
            out.setdefault((tc, cy, r.member_id), {})[r.criterion_id] = r.value
    return out
