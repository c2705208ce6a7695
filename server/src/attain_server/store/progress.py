"""The progress repository: progress rows read into ProgressState and written back in bulk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.sql import Select

from attain_server.domain.decimals import decimal_text
from attain_server.domain.model import TargetDefinition
from attain_server.domain.progress import (
    ProgressKey,
    ProgressState,
    stored_state,
    tallies_from_json,
    tallies_to_json,
)

from . import bulk
from .tables import ProgressRow

PROGRESS_TABLE = ProgressRow.__table__  # type: ignore[attr-defined]

# The progress columns state_from_row reads.
STATE_COLUMNS = (
    "target_code",
    "cycle",
    "member_id",
    "level",
    "target_values",
    "tallies",
    "version",
    "attainment",
    "complete",
)

# An update matches the row as this batch read it (its version) and sets only what changes:
# the level and target values stay as the row opened with them.
_MATCH = (
    ("brand_code", "b_brand"),
    ("target_code", "b_target"),
    ("cycle", "b_cycle"),
    ("member_id", "b_member"),
    ("version", "b_version"),
)
_SET = ("tallies", "attainment", "rank_key", "complete", "version", "update_time")


def state_from_row(row: ProgressRow | Row[Any], target: TargetDefinition) -> ProgressState:
    """The in-memory state of a progress row: an ORM row, or a Core row with its columns."""
    return stored_state(
        target,
        key=(row.target_code, row.cycle, row.member_id),
        level=row.level,
        target_values={k: Decimal(v) for k, v in row.target_values.items()},
        tallies=tallies_from_json(row.tallies),
        version=row.version,
        attainment=row.attainment,
        complete=row.complete,
    )


def _by_cycle(keys: Iterable[ProgressKey]) -> dict[tuple[str, str], list[str]]:
    """The keys' members per (target, cycle), sorted: one IN list per cycle."""
    out: dict[tuple[str, str], list[str]] = {}
    for tc, cy, member in sorted(keys):
        out.setdefault((tc, cy), []).append(member)
    return out


def _states_query(size: int, lock: bool) -> Select[Any]:
    p = PROGRESS_TABLE
    q = (
        select(*(p.c[name] for name in STATE_COLUMNS))
        .where(
            p.c.brand_code == bindparam("brand"),
            p.c.target_code == bindparam("target"),
            p.c.cycle == bindparam("cycle"),
            bulk.in_list(p.c.member_id, size),
        )
        .order_by(p.c.member_id)
    )
    return q.with_for_update() if lock else q


async def load_progress_states(
    s: bulk.Conn,
    *,
    brand: str,
    keys: Iterable[ProgressKey],
    targets: Mapping[str, TargetDefinition],
    lock: bool,
) -> dict[ProgressKey, ProgressState]:
    """The stored rows among `keys` (locked FOR UPDATE when `lock`), read for the targets'
    current definitions. Core rows, not ORM entities: they are written back with
    executemany, so no session needs to track them."""
    found: dict[ProgressKey, ProgressState] = {}
    cache_key = "ingest.progress.locked" if lock else "ingest.progress"
    for (tc, cy), members in sorted(_by_cycle(keys).items()):
        params = {"brand": brand, "target": tc, "cycle": cy}
        rows = await bulk.fetch_in(s, cache_key, lambda n: _states_query(n, lock), params, members)
        for row in rows:
            found[(tc, cy, row.member_id)] = state_from_row(row, targets[tc])
    return found


def progress_params(brand: str, p: ProgressState, now: datetime) -> dict[str, Any]:
    """The insert of a row opening now."""
    return {
        "brand_code": brand,
        "target_code": p.key[0],
        "cycle": p.key[1],
        "member_id": p.key[2],
        "level": p.level,
        "target_values": {k: decimal_text(v) for k, v in p.target_values.items()},
        "tallies": tallies_to_json(p.tallies),
        "attainment": p.attainment,
        "rank_key": p.rank_key,
        "complete": p.complete,
        "version": p.version,
        "open_time": now,  # a row is inserted in the unit of work that opens it
        "update_time": now,
    }


async def insert_progress_states(
    s: bulk.Conn, *, brand: str, states: Sequence[ProgressState], now: datetime
) -> None:
    """Inserts rows that open now."""
    await bulk.executemany(
        s,
        "progress.insert",
        lambda: insert(PROGRESS_TABLE),
        [progress_params(brand, p, now) for p in states],
    )


async def update_progress_states(
    s: bulk.Conn, *, brand: str, states: Sequence[ProgressState], now: datetime
) -> int:
    """Writes the states' tallies and standing where each row is still at the version before
    theirs (`version - 1`); returns how many rows changed."""
    params = [
        {
            "b_brand": brand,
            "b_target": p.key[0],
            "b_cycle": p.key[1],
            "b_member": p.key[2],
            "b_version": p.version - 1,
            "tallies": tallies_to_json(p.tallies),
            "attainment": p.attainment,
            "rank_key": p.rank_key,
            "complete": p.complete,
            "version": p.version,
            "update_time": now,
        }
        for p in states
    ]
    return await bulk.update_rows(s, "progress.update", PROGRESS_TABLE, _MATCH, _SET, params)
