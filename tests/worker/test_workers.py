"""Workers as processes: two on one brand import a file once; a SIGKILL mid-file loses nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from attain_server.application.job_locks import JobLocks
from attain_server.application.targets import create_target
from attain_server.store.engine import Database
from attain_server.store.tables import FileImportRow, ProgressRow, TransactionRow
from attain_worker.scheduler import Worker
from conftest import Api, Brand, FakeClock, pg_database
from sshd_server import HEADER, Sshd, folders, settings, user_key
from sshd_server import stored as stored_settings
from support import (
    SECRETS_KEY,
    amount_target,
    brand_with_members,
    monthly_target,
    progress,
    setup,
)

BIN = Path(sys.executable).parent


async def test_two_workers_polling_one_brand_import_each_file_once(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    if api.app.db.dialect != "postgresql":
        pytest.skip("several workers share one database only on PostgreSQL")
    now = datetime.now(UTC)
    clock.set(now)
    target = monthly_target(start=now.date().replace(day=1).isoformat())
    await setup(api, brand, target, "M-001")
    base = folders(sshd)
    rows = "".join(
        f"T{i},M-001,{now.isoformat()},S1,SKU-1,food,1,1.25,SALE,\n" for i in range(3000)
    )
    (base / "transactions" / "big.csv").write_text(HEADER + rows)
    (base / "transactions" / "big.csv.done").write_text("")
    await stored_settings(api.app.db, brand.code, settings(sshd, base), user_key(sshd))
    one, two = Worker(api.app, settle_seconds=0.05), Worker(api.app, settle_seconds=0.05)
    # While another worker holds the brand's lock, a poll stands aside and leaves the file.
    async with JobLocks(api.app.db).hold(f"sftp:{brand.code}") as mine:
        assert mine
        assert await one.run_pull(brand.code) == []
    assert (base / "transactions" / "big.csv").exists()
    results = await asyncio.gather(one.run_pull(brand.code), two.run_pull(brand.code))
    assert sorted(len(r) for r in results) == [0, 1]  # one polled, the other stood aside
    assert (await progress(api, brand)).achieved_value.value == "3750.00"


async def _wait_for(check: object, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    said = await asyncio.to_thread(_tail, log)
    raise AssertionError(f"timed out waiting for {what}; the worker's log ends:\n{said}")


def _tail(log: Path) -> str:
    return log.read_text()[-4000:] if log.exists() else "(no log)"


async def test_a_worker_killed_mid_file_resumes_without_loss_or_double_count(
    sshd: Sshd, tmp_path: Path
) -> None:
    # A database of its own: the worker process would otherwise also poll and tick every
    # brand the rest of the suite left behind, and this test is about one file's resume.
    async with pg_database("attain_kill") as url:
        await _killed_mid_file(url, sshd, tmp_path)


async def _killed_mid_file(pg_url: str, sshd: Sshd, tmp_path: Path) -> None:
    db = Database(pg_url)
    await db.migrate()
    now = datetime.now(UTC)
    code = f"K{random.randrange(10**9)}"
    members = [f"M{i:03}" for i in range(200)]
    await brand_with_members(db, code, members, now)
    await create_target(
        db=db, brand=code, now=now, definition=amount_target("SALES", now.date().replace(day=1))
    )
    base = folders(sshd)
    rng = random.Random(11)
    expected: dict[str, Decimal] = {m: Decimal(0) for m in members}
    lines = []
    when = (now - timedelta(minutes=5)).isoformat()
    for i in range(20_000):
        member = rng.choice(members)
        amount = Decimal(rng.randrange(1, 100_000)) / 100
        expected[member] += amount
        lines.append(f"T{i},{member},{when},S1,SKU-1,food,1,{amount},SALE,\n")
    (base / "transactions" / "big.csv").write_text(HEADER + "".join(lines))
    (base / "transactions" / "big.csv.done").write_text("")
    await stored_settings(db, code, settings(sshd, base), user_key(sshd))
    env = {
        **os.environ,
        "ATTAIN_LOG_FORMAT": "json",
        "ATTAIN_WORKER_SETTLE_SECONDS": "0.05",
        "ATTAIN_SECRETS_KEY": SECRETS_KEY,
    }

    worker_log = tmp_path / "worker.log"

    def start() -> subprocess.Popen[bytes]:
        with worker_log.open("a") as log:
            return subprocess.Popen(
                [BIN / "attain-server", "worker", "--database-url", pg_url],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )

    async def committed() -> int:
        async with db.read() as s:
            row = (
                await s.exec(select(FileImportRow).where(FileImportRow.brand_code == code))
            ).first()
        return row.committed_line if row else 0

    first = start()
    try:
        await _wait_for(lambda: _past(committed, 2000), 60, "the first batches", worker_log)
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = await committed()
    assert 0 < killed_at < 20_001, killed_at
    second = start()
    try:

        async def finished() -> bool:
            async with db.read() as s:
                row = (
                    await s.exec(select(FileImportRow).where(FileImportRow.brand_code == code))
                ).first()
            # Recorded as done, then moved: wait for both.
            moved = await asyncio.to_thread((base / "processed" / "big.csv").exists)
            return row is not None and row.state == "DONE" and moved

        await _wait_for(finished, 120, "the import to finish after the restart", worker_log)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 30)
    async with db.read() as s:
        row = (await s.exec(select(FileImportRow).where(FileImportRow.brand_code == code))).one()
        stored = (
            await s.exec(
                select(func.count())
                .select_from(TransactionRow)
                .where(TransactionRow.brand_code == code)
            )
        ).one()
        progress_rows = (
            await s.exec(select(ProgressRow).where(ProgressRow.brand_code == code))
        ).all()
    assert stored == 20_000
    assert row.rows_accepted + row.rows_duplicate == 20_000 and row.rows_refused == 0
    assert row.rows_read == 20_000  # the checkpoint kept the count exact across the kill
    achieved = {p.member_id: Decimal(p.tallies["c1"]["total"]) for p in progress_rows}
    assert achieved == {m: v for m, v in expected.items() if v}
    assert (base / "processed" / "big.csv").exists()
    await db.dispose()


async def _past(read: object, line: int) -> bool:
    return bool(await read() > line)  # type: ignore[operator]
