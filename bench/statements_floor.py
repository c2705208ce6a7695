"""The floor of an import on SQLite: the statements a batch runs, with nothing between them.

The worker's import runs, per batch of transactions, the same few statements: the batch's
ids looked up (duplicates), its members and its progress rows read, the transactions
inserted, the progress rows updated, one commit. Here those statements run through
`sqlite3` directly on a database built by the same migrations, with the worker's hot-writer
settings (WAL, synchronous NORMAL, the same page cache), every parameter made before the
clock starts: what is left is SQLite's own work per row. However fast the Python around them
became, an import on SQLite could not go faster than this.

Used by `bench.sftp_import`, which reports it next to the worker's rate; runs on its own too:
``.venv/bin/python -m bench.statements_floor``.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

from attain_server.store.engine import CHECKPOINT_SECONDS, HOT_CACHE_KIB

from . import common

BRAND = "FLOOR"
TARGET = "SALES"
IN_CHUNK = 512  # as the store's driver runner binds IN lists


@dataclass
class StatementsFloor:
    rows: int
    members: int
    batch: int
    seconds: float = 0.0
    # Seconds per kind of statement, summed over the batches.
    parts: dict[str, float] | None = None

    @property
    def us_per_row(self) -> float:
        return self.seconds / self.rows * 1e6 if self.rows else 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        parts = ", ".join(
            f"{name} {seconds / self.rows * 1e6:.1f}"
            for name, seconds in (self.parts or {}).items()
        )
        return (
            f"{self.us_per_row:.1f} µs per row ({self.rate:,.0f} rows/s) over {self.rows:,} "
            f"rows in batches of {self.batch:,} for {self.members:,} members; per row: {parts} µs"
        )


def _text(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _in(sql: str, column: str) -> str:
    return sql + f" AND {column} IN ({', '.join('?' * IN_CHUNK)})"


def _chunks(values: list[str]) -> list[list[str]]:
    out = []
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        out.append(chunk + [chunk[-1]] * (IN_CHUNK - len(chunk)))
    return out


def measure(path: Path, rows: int, members: int, batch: int) -> StatementsFloor:
    """Runs the statements on the migrated, empty database at `path`."""
    rng = random.Random(20261124)
    now = datetime.now(UTC)
    stamp = _text(now)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        f"cache_size=-{HOT_CACHE_KIB}",
        "wal_autocheckpoint=0",
    ):
        conn.execute(f"PRAGMA {pragma}")
    ids = [f"M{i:06d}" for i in range(members)]
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO brand (code, display_name, time_zone, create_time) VALUES (?, '', 'UTC', ?)",
        (BRAND, stamp),
    )
    conn.executemany(
        "INSERT INTO member (brand_code, external_id, display_name, level, groups, create_time,"
        " update_time) VALUES (?, ?, '', '', '[]', ?, ?)",
        [(BRAND, m, stamp, stamp) for m in ids],
    )
    conn.executemany(
        "INSERT INTO progress (brand_code, target_code, cycle, member_id, level, target_values,"
        " tallies, attainment, rank_key, complete, version, open_time, update_time)"
        " VALUES (?, ?, ?, ?, '', '{\"c1\":\"100000\"}', ?, '0', 0, 0, 1, ?, ?)",
        [
            (BRAND, TARGET, "2026-11", m, '{"c1":{"total":"0","key_counts":{}}}', stamp, stamp)
            for m in ids
        ],
    )
    conn.execute("COMMIT")

    select_ids = _in(
        "SELECT id, member_id, type, occurred_time, store_id, original_id, lines, net_lines,"
        " counted_in FROM txn WHERE brand_code = ?",
        "id",
    )
    select_members = _in(
        "SELECT external_id, display_name, level, groups FROM member WHERE brand_code = ?",
        "external_id",
    )
    select_progress = (
        _in(
            "SELECT target_code, cycle, member_id, level, target_values, tallies, version,"
            " attainment, complete FROM progress"
            " WHERE brand_code = ? AND target_code = ? AND cycle = ?",
            "member_id",
        )
        + " ORDER BY member_id"
    )
    insert_txn = (
        "INSERT INTO txn (brand_code, id, member_id, type, occurred_time, store_id,"
        " original_id, lines, net_lines, counted_in, record_time)"
        " VALUES (?, ?, ?, 'SALE', ?, ?, '', ?, ?, ?, ?)"
    )
    update_progress = (
        "UPDATE progress SET tallies = ?, attainment = ?, rank_key = ?, complete = ?,"
        " version = ?, update_time = ? WHERE brand_code = ? AND target_code = ? AND cycle = ?"
        " AND member_id = ? AND version = ?"
    )
    versions = dict.fromkeys(ids, 1)
    totals = dict.fromkeys(ids, 0)
    parts = dict.fromkeys(("reads", "insert", "update", "commit"), 0.0)
    checkpointed = time.perf_counter()
    counted_in = orjson.dumps([[TARGET, "2026-11"]]).decode()
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        # Everything the statements bind, made before the clock starts.
        txns = []
        touched: dict[str, None] = {}
        for i in range(start, start + n):
            m = ids[rng.randrange(members)]
            cents = rng.randrange(1, 500_000)
            totals[m] += cents
            touched[m] = None
            lines = orjson.dumps(
                [[f"SKU-{cents % 20}", f"cat{cents % 7}", "1", f"{cents // 100}.{cents % 100:02d}"]]
            ).decode()
            when = _text(now - timedelta(seconds=rng.randrange(86_400)))
            txns.append(
                (
                    BRAND,
                    f"T{i:08d}",
                    m,
                    when,
                    f"S{cents % 50}",
                    lines,
                    lines,
                    counted_in,
                    stamp,
                )
            )
        updates = []
        for m in touched:
            total = totals[m]
            updates.append(
                (
                    orjson.dumps(
                        {"c1": {"total": f"{total // 100}.{total % 100:02d}", "key_counts": {}}}
                    ).decode(),
                    str(Decimal(total).scaleb(-5)),  # the percent of 100,000.00, exactly
                    total * 10,
                    0,
                    versions[m] + 1,
                    stamp,
                    BRAND,
                    TARGET,
                    "2026-11",
                    m,
                    versions[m],
                )
            )
            versions[m] += 1
        id_chunks = [[BRAND, *c] for c in _chunks([t[1] for t in txns])]
        member_chunks = [[BRAND, *c] for c in _chunks(sorted(touched))]
        progress_chunks = [[BRAND, TARGET, "2026-11", *c] for c in _chunks(sorted(touched))]

        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for args in id_chunks:
            conn.execute(select_ids, args).fetchall()
        for args in member_chunks:
            conn.execute(select_members, args).fetchall()
        for args in progress_chunks:
            conn.execute(select_progress, args).fetchall()
        t1 = time.perf_counter()
        conn.executemany(insert_txn, txns)
        t2 = time.perf_counter()
        changed = conn.executemany(update_progress, updates).rowcount
        t3 = time.perf_counter()
        conn.execute("COMMIT")
        t4 = time.perf_counter()
        if changed != len(updates):
            raise AssertionError(f"{changed} progress rows updated of {len(updates)}")
        parts["reads"] += t1 - t0
        parts["insert"] += t2 - t1
        parts["update"] += t3 - t2
        parts["commit"] += t4 - t3
        # The worker checkpoints from a thread of its own every CHECKPOINT_SECONDS; here the
        # checkpoint runs between batches as often, untimed.
        if time.perf_counter() - checkpointed >= CHECKPOINT_SECONDS:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            checkpointed = time.perf_counter()
    conn.close()
    return StatementsFloor(rows, members, batch, sum(parts.values()), parts)


async def run(rows: int, members: int, batch: int) -> StatementsFloor:
    async with common.sqlite_database("attain-bench-floor-") as db:
        path = Path(str(db.url.database))
        await db.dispose()  # the measurement uses its own sqlite3 connection
        return await asyncio.to_thread(measure, path, rows, members, batch)


def main() -> None:
    from attain_worker.imports import BATCH_TRANSACTIONS

    floor = asyncio.run(run(200_000, 50_000, BATCH_TRANSACTIONS))
    print(floor.describe())


if __name__ == "__main__":
    main()
