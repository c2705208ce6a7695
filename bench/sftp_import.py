"""A big transaction file over SFTP: the OpenSSH client's download (the floor) next to the
worker's end-to-end import, its rate and its peak memory, with every total checked.

A real OpenSSH sshd on a free loopback port (throwaway keys) serves a generated file of one
line per transaction (1,000,000 by default, 50,000 members). The worker runs as its own
process (`attain-server worker --database-url ...`), is left to start up and go idle, and
then the file and its `.done` marker appear in the brand's transactions folder.

Run from the repository root: ``.venv/bin/python -m bench.sftp_import`` (``--help``).
It prints tables and rewrites the "## SFTP import (bench/sftp_import)" section of
docs/benchmarks.md. The whole run stops by itself within ``--max-minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlmodel import select

from attain_server.application.brands import create_brand
from attain_server.application.sealing import Sealer, new_key, parse_keys
from attain_server.application.sftp_credentials import NewCredential
from attain_server.application.sftp_hosts import HostPolicy
from attain_server.application.sftp_settings import MIN_POLL_SECONDS, SftpSettings, set_settings
from attain_server.application.targets import create_target
from attain_server.domain.model import Criterion, Kpi, Period, PeriodKind, TargetDefinition
from attain_server.store.engine import Database
from attain_server.store.tables import (
    CycleEventRow,
    FileImportRow,
    ProgressRow,
    TransactionRow,
)
from attain_worker.imports import BATCH_TRANSACTIONS, TRANSACTION_COLUMNS

from . import common, statements_floor
from .ingest.cpu import process_seconds

HEADING = "## SFTP import (bench/sftp_import)"
SSHD = Path("/usr/sbin/sshd")
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
BRAND = "BENCH"
TARGET = "SALES"
FILE = "txns.csv"
HEADER = ",".join(TRANSACTION_COLUMNS) + "\n"
# Targets of the issue.
ROWS_PER_SECOND = 50_000
RSS_GROWTH_MB = 100
# The worker's SFTP poll interval (the smallest the settings allow).
POLL_SECONDS = MIN_POLL_SECONDS
ESTIMATE_ROWS = 50_000
# Seals the brand's SFTP credential; the worker process gets it as ATTAIN_SECRETS_KEY.
SECRETS_KEY = new_key()
# PostgreSQL: ANALYZE this often during an import, standing in for autovacuum (the report
# gives the cluster's setting).
ANALYZE_EVERY = 30.0


@dataclass(frozen=True)
class Plan:
    rows: int = 1_000_000
    members: int = 50_000
    floor_runs: int = 3
    max_minutes: float = 9.5
    profile_seconds: float = 20.0
    # Rows of the SQLite statements floor (bench/statements_floor.py); 0 skips it.
    statements_rows: int = 200_000
    postgres: bool = True
    estimate: bool = True


@dataclass
class ImportFigures:
    database: str
    rows: int
    skipped: str = ""
    note: str = ""
    file_bytes: int = 0
    poll_wait: float = 0.0  # file appears -> the worker's next poll connects
    pull_seconds: float = 0.0  # the poll connects -> the import row is DONE (seen)
    sha_seconds: float = 0.0  # the poll connects -> the import row exists (the hash pass)
    duration_ms: int = 0  # the import row's own figure (read and record, after the hash)
    worker_cores: float = 0.0  # worker CPU seconds / wall seconds during the pull
    cpu_seconds: float = 0.0  # worker CPU seconds during the pull
    db_cores: float = 0.0  # PostgreSQL backends' CPU seconds / wall seconds during the pull
    analyzed: int = 0  # PostgreSQL: ANALYZE runs during the import
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    peak_reset: bool = False
    verified: str = ""
    profile: common.Profile | None = None

    @property
    def import_rate(self) -> float:
        return self.rows / (self.duration_ms / 1000) if self.duration_ms else 0.0

    @property
    def pull_rate(self) -> float:
        return self.rows / self.pull_seconds if self.pull_seconds else 0.0

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_start_mb


@dataclass
class Floor:
    """The OpenSSH sftp client: ``get`` of the file, and a login alone (``pwd``)."""

    bytes: int
    seconds: list[float]
    logins: list[float]

    @property
    def median(self) -> float:
        return common.median(self.seconds) if self.seconds else 0.0

    @property
    def login(self) -> float:
        return common.median(self.logins) if self.logins else 0.0

    @property
    def mb_per_s(self) -> float:
        transfer = self.median - self.login
        return self.bytes / 1e6 / transfer if transfer > 0 else 0.0

    def for_bytes(self, size: int) -> float:
        """One download of ``size`` bytes at the measured rate, login included."""
        return self.login + (size / 1e6 / self.mb_per_s if self.mb_per_s else 0.0)


# ---------------------------------------------------------------- processes


def _spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Any:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=common.REPO,
        )
    common.CHILDREN.append(proc)
    return proc


_stop = common.stop_process


def _stop_all() -> None:
    for proc in list(common.CHILDREN):
        common.stop_process(proc, 5.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


class Sshd:
    """OpenSSH sshd on a free loopback port with throwaway keys (as tests/sshd_server.py),
    logging at INFO so that every login (every worker poll) is seen and timed here."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.user = getpass.getuser()
        self.user_key = folder / "user_key"
        self.root = folder / "sftp"
        self.log = folder / "sshd.log"
        self.accepts: list[tuple[float, float]] = []  # (monotonic, wall) of each login
        self._stop = threading.Event()
        _keygen(folder / "host_key")
        _keygen(self.user_key)
        (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
        self.root.mkdir()
        self.host_key = " ".join((folder / "host_key.pub").read_text().split()[:2])
        config = folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {LOOPBACK}",
                    f"HostKey {folder / 'host_key'}",
                    f"PidFile {folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        self.log.touch()
        self.proc = _spawn([str(SSHD), "-D", "-e", "-f", str(config)], self.log)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {self.log.read_text()}") from None
                time.sleep(0.05)
        self._tail = threading.Thread(target=self._follow, daemon=True)
        self._tail.start()

    def _follow(self) -> None:
        with self.log.open() as f:
            while not self._stop.is_set():
                line = f.readline()
                if not line:
                    time.sleep(0.01)
                    continue
                if "Accepted publickey" in line:
                    self.accepts.append((time.monotonic(), time.time()))

    def first_accept_after(self, when: float) -> tuple[float, float] | None:
        return next(((m, w) for m, w in self.accepts if m >= when), None)

    def stop(self) -> None:
        self._stop.set()
        _stop(self.proc)


def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def _pg_seconds(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving ``database`` (0 when not PostgreSQL)."""
    if not database:
        return 0.0
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            total += process_seconds(int(entry.name))
    return total


def _reset_peak(pid: int) -> bool:
    """Resets VmHWM to the current RSS (Linux: "5" into clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    s = _status_kb(pid)
    return bool(s) and s["VmHWM"] <= s["VmRSS"] + 512


# ---------------------------------------------------------------- the file


def generate(path: Path, rows: int, members: int, now: datetime) -> dict[str, Decimal]:
    """One line per transaction, amounts with 2 decimals; returns each member's total."""
    rng = random.Random(20261123)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(int((now - month_start).total_seconds()) - 600, 1)
    # A few thousand distinct instants this month, all at least 10 minutes in the past.
    stamps = [
        (month_start + timedelta(seconds=rng.randrange(span))).isoformat() for _ in range(4096)
    ]
    ids = [f"M{i:06d}" for i in range(members)]
    cents = [0] * members
    with path.open("w") as f:
        f.write(HEADER)
        buf = []
        for i in range(rows):
            m = rng.randrange(members)
            c = rng.randrange(1, 500_000)  # 0.01 .. 4,999.99
            cents[m] += c
            buf.append(
                f"T{i:08d},{ids[m]},{stamps[i & 4095]},S{m % 50},SKU-{c % 20},cat{c % 7},1,"
                f"{c // 100}.{c % 100:02d},SALE,\n"
            )
            if len(buf) >= 50_000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
    return {ids[m]: Decimal(c).scaleb(-2) for m, c in enumerate(cents)}


def sftp_floor(sshd: Sshd, path: Path, runs: int, scratch: Path) -> Floor:
    """The OpenSSH sftp client downloading the file (the floor), and logging in alone."""
    argv = [
        "sftp",
        "-b",
        "-",
        "-i",
        str(sshd.user_key),
        "-P",
        str(sshd.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        f"{sshd.user}@{LOOPBACK}",
    ]

    def timed(batch: str) -> float:
        t0 = time.perf_counter()
        subprocess.run(
            argv, input=batch.encode(), check=True, stdout=subprocess.DEVNULL, timeout=300
        )
        return time.perf_counter() - t0

    floor = Floor(path.stat().st_size, [], [])
    for i in range(runs):
        dest = scratch / f"floor-{i}.csv"
        floor.seconds.append(timed(f"get {path} {dest}\n"))
        if dest.stat().st_size != floor.bytes:
            raise AssertionError("sftp downloaded a file of another size")
        dest.unlink()
        floor.logins.append(timed("pwd\n"))
    return floor


# ---------------------------------------------------------------- one import


class OutOfTime(Exception):
    """The import did not finish before the benchmark's deadline."""

    def __init__(self, label: str, row: FileImportRow | None, rows: int) -> None:
        self.rate = 0.0
        if row is None:
            text = "still hashing the file when the time was up"
        else:
            seconds = (datetime.now(UTC) - row.start_time).total_seconds()
            self.rate = row.rows_read / max(seconds, 1e-9)
            text = (
                f"{row.rows_read:,} of {rows:,} rows committed in {seconds:.0f} s "
                f"({self.rate:,.0f} rows/s) when the time was up"
            )
        super().__init__(f"{label}: the import did not finish: {text}")
        self.text = text


def _drop(staged: Path, folder: Path) -> int:
    """The file appears whole (a rename on one filesystem), then its marker; its size."""
    size = staged.stat().st_size
    staged.rename(folder / FILE)
    (folder / f"{FILE}.done").write_text("")
    return size


async def _appears(path: Path, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if await asyncio.to_thread(path.exists):
            return True
        await asyncio.sleep(0.05)
    return False


async def _setup(db: Database, sshd: Sshd, base: Path, members: int, now: datetime) -> None:
    await create_brand(db=db, code=BRAND, time_zone="UTC", now=now)
    await common.load_members(db, BRAND, [f"M{i:06d}" for i in range(members)], now)
    await create_target(
        db=db,
        brand=BRAND,
        now=now,
        definition=TargetDefinition(
            code=TARGET,
            criteria=(Criterion("c1", Kpi.TRANSACTION_AMOUNT, Decimal(100_000)),),
            period=Period(PeriodKind.MONTHLY, now.date().replace(day=1)),
        ),
    )
    for sub in ("transactions", "processed", "failed"):
        (base / sub).mkdir(parents=True)
    await set_settings(
        db=db,
        brand=BRAND,
        now=now,
        settings=SftpSettings(
            host=LOOPBACK,
            port=sshd.port,
            username=sshd.user,
            host_key=sshd.host_key,
            transactions_folder=str(base / "transactions"),
            processed_folder=str(base / "processed"),
            failed_folder=str(base / "failed"),
            poll_interval_seconds=POLL_SECONDS,
        ),
        credential=NewCredential(private_key=sshd.user_key.read_text()),
        sealer=Sealer(parse_keys(SECRETS_KEY, "the run's key")),
        hosts=HostPolicy(),
    )
    await common.analyze(db)


async def _import_row(db: Database) -> FileImportRow | None:
    async with db.read() as s:
        return (
            await s.exec(select(FileImportRow).where(FileImportRow.brand_code == BRAND))
        ).first()


async def _opened(db: Database, cycle: str) -> bool:
    async with db.read() as s:
        row = await s.get(CycleEventRow, (BRAND, TARGET, cycle, "OPEN"))
    return row is not None


def _worker_errors(log: Path) -> list[str]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("level") in ("warning", "error", "critical"):
                    out.append(str(event.get("event")))
    return out


async def run_import(
    label: str,
    url: str,
    sshd: Sshd,
    staged: Path,
    rows: int,
    expected: dict[str, Decimal],
    plan: Plan,
    scratch: Path,
    deadline: float,
    profile_seconds: float,
) -> ImportFigures:
    """Brand, members, target and SFTP settings; the worker started and left to go idle; then
    the file and its marker appear and the import is followed to the end and verified."""
    fig = ImportFigures(label, rows)
    now = datetime.now(UTC)
    tag = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    base = sshd.root / tag
    db = Database(url)
    worker: subprocess.Popen[bytes] | None = None
    spy: common.Spy | None = None
    try:
        await db.migrate()
        await _setup(db, sshd, base, plan.members, now)
        cycle = f"{now:%Y-%m}"
        log = scratch / f"worker-{tag}.log"
        started = time.monotonic()
        worker = _spawn(
            [str(BIN / "attain-server"), "worker", "--database-url", url],
            log,
            env={
                "ATTAIN_WORKER_SETTLE_SECONDS": "0.05",
                "ATTAIN_LOG_FORMAT": "json",
                "ATTAIN_LOG_LEVEL": "INFO",
                "ATTAIN_SECRETS_KEY": SECRETS_KEY,
            },
        )
        pid = worker.pid
        # Idle: the clock opened the month (a row at zero per member), a poll found nothing,
        # and the process has used no CPU for a second.
        while not (await _opened(db, cycle) and sshd.first_accept_after(started)):
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{log.read_text()[-2000:]}")
            if time.monotonic() > started + 120:
                raise TimeoutError("the worker did not open the cycle and poll within 120 s")
            await asyncio.sleep(0.1)
        while True:
            before = process_seconds(pid)
            await asyncio.sleep(1.0)
            if process_seconds(pid) - before < 0.02:
                break
        # PostgreSQL: statistics for the rows the clock just opened (as autovacuum would, if
        # on, for a table that grew from nothing to 50,000 rows).
        await common.analyze(db)
        fig.rss_start_mb = _status_kb(pid)["VmRSS"] / 1024
        fig.peak_reset = _reset_peak(pid)
        if not fig.peak_reset:
            fig.note = "VmHWM could not be reset: the peak includes start-up"

        # The file appears whole (a rename), then its marker.
        dropped = time.monotonic()
        fig.file_bytes = _drop(staged, base / "transactions")
        rss_max = 0
        pg_name = (make_url(url).database or "") if db.dialect == "postgresql" else ""
        pg_at_accept = 0.0
        last_analyze = time.monotonic()
        spy_until = 0.0
        cpu_at_accept = 0.0
        accept: tuple[float, float] | None = None
        row: FileImportRow | None = None
        last_read = 0.0
        while True:
            now_m = time.monotonic()
            if now_m > deadline:
                raise OutOfTime(label, row, rows)
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{log.read_text()[-2000:]}")
            rss_max = max(rss_max, _status_kb(pid).get("VmRSS", 0))
            if accept is None:
                accept = sshd.first_accept_after(dropped)
                if accept is not None:
                    cpu_at_accept = process_seconds(pid)
                    pg_at_accept = _pg_seconds(pg_name)
            if pg_name and accept is not None and now_m - last_analyze >= ANALYZE_EVERY:
                # Standing in for autovacuum (the report says whether it is on), as often as
                # it could run.
                last_analyze = now_m
                await common.analyze(db)
                fig.analyzed += 1
            if now_m - last_read >= 0.25:
                last_read = now_m
                row = await _import_row(db)
                if row is not None and spy is None and profile_seconds > 0:
                    spy = common.Spy(pid, scratch / f"worker-{tag}.txt")
                    spy_until = time.monotonic() + profile_seconds
                if spy is not None and spy.recording and time.monotonic() > spy_until:
                    fig.profile = spy.stop()
                if row is not None and row.state != "RUNNING":
                    break
            await asyncio.sleep(0.05)
        done_at = time.monotonic()
        cpu_done = process_seconds(pid)
        pg_done = _pg_seconds(pg_name)
        if spy is not None and spy.recording:
            fig.profile = spy.stop()
        status = _status_kb(pid)
        fig.rss_peak_mb = max(status.get("VmHWM", 0), rss_max) / 1024
        assert accept is not None and row is not None
        fig.poll_wait = accept[0] - dropped
        fig.pull_seconds = done_at - accept[0]
        fig.sha_seconds = row.start_time.timestamp() - accept[1]
        fig.duration_ms = row.duration_ms
        fig.cpu_seconds = cpu_done - cpu_at_accept
        fig.worker_cores = fig.cpu_seconds / max(fig.pull_seconds, 1e-9)
        fig.db_cores = (pg_done - pg_at_accept) / max(fig.pull_seconds, 1e-9)
        # The worker moves the file after recording it as done.
        moved = base / "processed" / FILE
        if not await _appears(moved, deadline):
            raise OutOfTime(label, row, rows)
        _stop(worker)
        worker = None
        errors = _worker_errors(log)
        if errors:
            fig.note = (fig.note + "; " if fig.note else "") + f"worker warnings: {errors[:3]}"
        fig.verified = await _verify(db, row, rows, expected, cycle)
        moved.rename(staged)  # back to the staging folder for the next run
        return fig
    finally:
        if spy is not None:
            spy.kill()
        if worker is not None:
            _stop(worker)
        await db.dispose()


async def _verify(
    db: Database, row: FileImportRow, rows: int, expected: dict[str, Decimal], cycle: str
) -> str:
    async with db.read() as s:
        stored = int(
            (
                await s.exec(
                    select(func.count())
                    .select_from(TransactionRow)
                    .where(TransactionRow.brand_code == BRAND)
                )
            ).one()
        )
        got = {
            p.member_id: Decimal(p.tallies["c1"]["total"])
            for p in (
                await s.exec(
                    select(ProgressRow).where(
                        ProgressRow.brand_code == BRAND,
                        ProgressRow.target_code == TARGET,
                        ProgressRow.cycle == cycle,
                    )
                )
            ).all()
        }
    counts = {
        "txn rows": stored,
        "read": row.rows_read,
        "accepted": row.rows_accepted,
        "duplicate": row.rows_duplicate,
        "refused": row.rows_refused,
    }
    problems = []
    if row.state != "DONE":
        problems.append(f"import {row.state}: {row.failure_reason}")
    if stored != rows:
        problems.append(f"{stored:,} transactions stored, {rows:,} in the file")
    if (row.rows_read, row.rows_accepted, row.rows_duplicate, row.rows_refused) != (
        rows,
        rows,
        0,
        0,
    ):
        problems.append(f"import counts {counts}")
    wrong = [m for m, total in expected.items() if got.get(m, Decimal(0)) != total]
    extra = [m for m, total in got.items() if m not in expected and total != 0]
    if wrong or extra:
        problems.append(
            f"{len(wrong)} member totals differ from the file (e.g. {wrong[:3]}), "
            f"{len(extra)} unexpected"
        )
    if problems:
        raise AssertionError("; ".join(problems))
    total = sum(expected.values(), Decimal(0))
    return (
        f"{stored:,} transactions stored; import row DONE with read = accepted = {rows:,}, "
        f"duplicate 0, refused 0; all {len(expected):,} members' progress totals equal the "
        f"file's (sum {total:,})"
    )


# ---------------------------------------------------------------- report


def _mb(value: float) -> str:
    return f"{value:,.0f} MB"


def figures_table(
    floor: Floor, estimate: ImportFigures | None, figs: Sequence[ImportFigures]
) -> list[str]:
    cols = ([estimate] if estimate is not None else []) + list(figs)
    rows: list[list[str]] = [["measurement", *(f"{f.database}, {f.rows:,} rows" for f in cols)]]
    for label, fn in (
        ("the file", _size),
        ("floor: the `sftp` client downloads it once (login included)", lambda f: _floor(floor, f)),
        (f"file appears → the worker's next poll logs in (polls every {POLL_SECONDS} s)", _poll),
        ("**poll logs in → import DONE (end to end)**", _pull),
        ("- of which the SHA-256 pass over SFTP", _sha),
        ("- of which the import itself (the row's `duration_ms`)", _dur),
        ("**import rate: rows / `duration_ms`**", _rate),
        ("end-to-end rate: rows / (poll logs in → DONE)", _pull_rate),
        ("end to end / floor", lambda f: _ratio(floor, f)),
        ("worker CPU during the pull (cores)", _cores),
        ("**worker RSS: idle before the file → peak (growth)**", _rss),
    ):
        rows.append([label, *(("skipped: " + f.skipped) if f.skipped else fn(f) for f in cols)])
    return common.table(rows)


def _size(f: ImportFigures) -> str:
    return f"{f.file_bytes / 1e6:,.1f} MB"


def _floor(floor: Floor, f: ImportFigures) -> str:
    return f"{floor.for_bytes(f.file_bytes):.2f} s"


def _ratio(floor: Floor, f: ImportFigures) -> str:
    base = floor.for_bytes(f.file_bytes)
    return f"{f.pull_seconds / base:,.0f}×" if base else "n/a"


def _poll(f: ImportFigures) -> str:
    return f"{f.poll_wait:.2f} s"


def _pull(f: ImportFigures) -> str:
    return f"{f.pull_seconds:.1f} s"


def _sha(f: ImportFigures) -> str:
    return f"{f.sha_seconds:.1f} s"


def _dur(f: ImportFigures) -> str:
    return f"{f.duration_ms / 1000:.1f} s"


def _rate(f: ImportFigures) -> str:
    return f"{f.import_rate:,.0f} rows/s"


def _pull_rate(f: ImportFigures) -> str:
    return f"{f.pull_rate:,.0f} rows/s"


def _cores(f: ImportFigures) -> str:
    db = f" (PostgreSQL backends {f.db_cores:.2f})" if f.database.startswith("PostgreSQL") else ""
    return f"{f.worker_cores:.2f}{db}"


def _rss(f: ImportFigures) -> str:
    return f"{_mb(f.rss_start_mb)} → {_mb(f.rss_peak_mb)} (+{f.rss_growth_mb:,.0f} MB)"


def targets_table(
    plan: Plan, figs: Sequence[ImportFigures], statements: statements_floor.StatementsFloor | None
) -> list[str]:
    rows = [["target (from the issue)", *(f"{f.database}, {f.rows:,} rows" for f in figs)]]

    def verdict(ok: bool, text: str) -> str:
        return f"{'met' if ok else '**missed**'}: {text}"

    row = [f">= {ROWS_PER_SECOND:,} rows/s on SQLite"]
    for f in figs:
        if f.skipped:
            row.append("skipped")
        elif f.database.startswith("SQLite"):
            row.append(
                verdict(
                    f.import_rate >= ROWS_PER_SECOND,
                    f"{f.import_rate:,.0f} rows/s (import), {f.pull_rate:,.0f} end to end"
                    + (
                        f"; the SQLite statements alone: {statements.rate:,.0f} rows/s"
                        if statements is not None and statements.rate
                        else ""
                    ),
                )
            )
        else:
            row.append(f"(no target) {f.import_rate:,.0f} rows/s")
    rows.append(row)
    row = [f"RSS growth < {RSS_GROWTH_MB} MB"]
    for f in figs:
        row.append(
            "skipped"
            if f.skipped
            else verdict(f.rss_growth_mb < RSS_GROWTH_MB, f"+{f.rss_growth_mb:,.0f} MB")
        )
    rows.append(row)
    row = ["no row lost or counted twice"]
    for f in figs:
        row.append("skipped" if f.skipped else "met: totals checked against the file")
    rows.append(row)
    row = [f"{plan.rows:,}-row file"]
    for f in figs:
        row.append(
            "skipped"
            if f.skipped
            else ("met" if f.rows >= plan.rows else f"**smaller file**: {f.rows:,} rows")
        )
    rows.append(row)
    return common.table(rows)


def markdown(
    plan: Plan,
    started: datetime,
    pg: str,
    autovacuum: str,
    busy: float,
    floor: Floor,
    estimate: ImportFigures | None,
    figs: Sequence[ImportFigures],
    elapsed: float,
    statements: statements_floor.StatementsFloor | None = None,
) -> str:
    done = [f for f in figs if not f.skipped]
    lines = [
        HEADING,
        "",
        common.machine_line(started, pg)
        + f", OpenSSH {_openssh_version()}. {common.quiet_note(busy)} The run took "
        f"{elapsed:.0f} s. The `sftp` floor is the **median of {len(floor.seconds)} downloads**; "
        "each import is **one run** over the whole file (its rate is the average of every "
        "batch of the file). Reproduce with `.venv/bin/python -m bench.sftp_import`.",
        "",
        f"Floor: the OpenSSH `sftp` client's `get` of the {floor.bytes / 1e6:,.1f} MB file took "
        f"{floor.median:.2f} s, of which {floor.login:.2f} s is logging in (a `pwd`-only "
        f"session): {floor.mb_per_s:,.0f} MB/s. The worker reads the file twice (a SHA-256 "
        "pass, then the import).",
        "",
        *figures_table(floor, estimate, figs),
        "",
        *targets_table(plan, figs, statements),
        "",
    ]
    if statements is not None and statements.rate:
        lines += [
            "**The SQLite statements alone** (`bench/statements_floor.py`, same run): the "
            "statements an import batch runs (the batch's ids looked up, its members and "
            "progress rows read, the transactions inserted, the progress rows updated, the "
            "commit), through `sqlite3` with every parameter made beforehand, on a database "
            "built by the same migrations with the worker's writer settings (WAL, synchronous "
            "NORMAL, the same page cache, checkpoints as often as the worker's thread runs "
            f"them): {statements.describe()}. That is the import's ceiling on SQLite with no "
            "Python work at all between the statements.",
            "",
        ]
    smaller = [f for f in figs if f.rows < plan.rows]
    if smaller and estimate is not None:
        minutes = plan.rows / max(estimate.pull_rate, 1) / 60
        text = (
            f"**Smaller files than the issue's {plan.rows:,} rows**: "
            + ", ".join(f"{f.database} {f.rows:,} rows" for f in smaller)
            + f". A first {ESTIMATE_ROWS:,}-row import on SQLite ran at "
            f"{estimate.pull_rate:,.0f} rows/s end to end, so {plan.rows:,} rows would take "
            f"about {minutes:.0f} minutes per database, more than the {plan.max_minutes:g} "
            "minutes this benchmark allows itself for everything; each file was sized to fit."
        )
        big = max(
            (f for f in done if f.database.startswith("SQLite")),
            key=lambda f: f.rows,
            default=None,
        )
        if big is not None and big.import_rate:
            text += (
                f" The bigger SQLite file imported more slowly ({big.import_rate:,.0f} rows/s "
                f"over {big.rows:,} rows) than the first {ESTIMATE_ROWS:,} rows; at the "
                f"bigger file's rate the whole file would take about "
                f"{plan.rows / big.import_rate / 60:.0f} minutes for {plan.rows:,} rows."
            )
        text += " `--rows 1000000 --no-estimate --max-minutes 60` imports the whole file."
        lines += [text, ""]
    lines += [
        "- The file: one line per transaction (a SALE with one line), "
        f"{plan.members:,} members chosen at random, amounts 0.01 to 4,999.99 with 2 "
        "decimals (exact strings), times spread over this month up to 10 minutes ago. "
        "Expected per-member totals are summed exactly (as Decimal) while generating it.",
        "- sshd: OpenSSH `/usr/sbin/sshd` on 127.0.0.1, a free port, throwaway ed25519 keys, "
        "`Subsystem sftp internal-sftp`, `LogLevel INFO` (each login, so each worker poll, is "
        "timed from its log line). Floor: `sftp -b - -i <user key> -P <port> -o "
        "StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null` with one `get`.",
        f"- Per database: brand BENCH (zone UTC), {plan.members:,} members (Core "
        "executemany), a MONTHLY `TRANSACTION_AMOUNT` target for this month without rules, and "
        "`set_settings` with the user key (sealed with the run's `ATTAIN_SECRETS_KEY`), the "
        "pinned host key, "
        f"the folders and a poll every {POLL_SECONDS} s (the smallest allowed). Then "
        "`attain-server worker --database-url ...` with `ATTAIN_WORKER_SETTLE_SECONDS=0.05` "
        "starts and is left to go idle: its clock opens the month (a progress row at zero for "
        f"each of the {plan.members:,} members), a first poll finds nothing, and it uses no "
        "CPU for a second. PostgreSQL then gets `ANALYZE`, and again every "
        f"{ANALYZE_EVERY:.0f} s during the import, standing in for autovacuum"
        + (f" (this cluster runs with `autovacuum = {autovacuum}`)" if autovacuum else "")
        + "; see below for what happens without it. The RSS "
        "at that point is the start figure and the peak (VmHWM) is reset to it"
        + (" (`/proc/<pid>/clear_refs`)" if done and all(f.peak_reset for f in done) else "")
        + "; then the file appears (a rename) with its `.done` marker. Peak = VmHWM at the end "
        "(and the largest VmRSS sampled every 50 ms).",
        "- The worker's pull: log in, list, hash the whole file over SFTP (SHA-256: the "
        "import's identity), record the import row, stream the file again through the CSV "
        f"reader into `Recorder.record` in batches of {BATCH_TRANSACTIONS:,} transactions "
        "(one database transaction each, with its checkpoint), mark it DONE, move it to the "
        "processed folder. `duration_ms` counts from the import row to DONE (the hash pass is "
        "before).",
        "- Verified after each import: "
        + "; ".join(f"{f.database}: {f.verified}" for f in [estimate, *figs] if f and f.verified)
        + ".",
    ]
    notes = [f"{f.database}: {f.note}" for f in figs if f.note]
    if notes:
        lines.append("- Notes: " + "; ".join(notes) + ".")
    if done:
        lines += ["", "### What bounds the rate", ""]
        for f in done:
            per_row = f.cpu_seconds / f.rows * 1e6 if f.rows else 0.0
            text = (
                f"- **{f.database}**: {f.import_rate:,.0f} rows/s. The worker process used "
                f"{f.worker_cores:.2f} cores during the pull ({per_row:,.0f} µs of CPU per row, "
                "all threads); "
                f"{ROWS_PER_SECOND:,} rows/s would need under {1e6 / ROWS_PER_SECOND:.0f} µs "
                "per row. The SFTP transfer is not the limit: the hash pass over the whole "
                f"file took {f.sha_seconds:.1f} s of the {f.pull_seconds:.0f} s."
            )
            if f.database.startswith("PostgreSQL"):
                text += (
                    f" The PostgreSQL backends used {f.db_cores:.2f} cores; the benchmark "
                    f"ran `ANALYZE` {f.analyzed} times during the import."
                )
            if f.profile is not None:
                text += (
                    f" py-spy during the first {plan.profile_seconds:.0f} s of the import "
                    f"(`--gil --nonblocking`, 100 Hz): {f.profile.sentences()}"
                )
            lines.append(text)
    if done:
        lines.append(
            f"- Per batch of {BATCH_TRANSACTIONS:,} transactions the worker runs a handful of "
            "statements in one unit of work, but every row goes through Python many times: the "
            "CSV reader and a `Transaction` per row, its shape test, "
            "the batch's stored ids, members and progress rows read through plans compiled once "
            "and run on the driver (decision 0010), a tally per transaction and an attainment "
            "per touched progress row (imports ask for no reply snapshots: "
            f"`snapshots=False`), then {BATCH_TRANSACTIONS:,} `txn` rows (lines as JSON) and "
            "the progress updates (tallies as JSON) bound row by row through "
            "`attain_server.store._runner` (each statement compiled once) for the driver's "
            f"executemany. {ROWS_PER_SECOND:,} rows/s leaves {1e6 / ROWS_PER_SECOND:.0f} µs per "
            "row for all of it on one event loop"
            + (
                f", and the statements alone take {statements.us_per_row:.0f} µs of that"
                if statements is not None and statements.rate
                else ""
            )
            + ": the target needs a different shape of import (set-based SQL instead of Python "
            "per row, and fewer progress writes than one per member per batch), not tuning."
        )
    if any(f.database.startswith("PostgreSQL") for f in done):
        lines.append(
            "- **PostgreSQL without fresh statistics** (measured while writing this benchmark "
            "in session 2, 40 batches of 1,000 through `Recorder.record` right after an "
            "`ANALYZE` of the empty `txn` table): each batch's duplicate lookup `SELECT ... "
            "FROM txn WHERE brand_code = $1 AND id IN ($2, ..., $501)` is planned as a bitmap "
            "scan of "
            "`ix_txn_member` (dropped since, in migration 0005) on `brand_code` alone, then a "
            "filter: it reads every transaction "
            "of the brand and compares each with the 500 ids. It grew from 4 ms to about "
            "1.5 s per lookup as the brand reached 40,000 transactions (43 of the 51 s of "
            "database time; 626 rows/s over the 40,000 rows); after `ANALYZE` the same query "
            "is an index-only scan of `txn_pkey` in 2.6 ms. Without autovacuum (or an "
            "`ANALYZE` after big loads) a brand's first large file slows down quadratically."
        )
    return "\n".join(lines) + "\n"


def _openssh_version() -> str:
    try:
        out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return (out.stderr or out.stdout).strip().split(",")[0].removeprefix("OpenSSH_")


# ---------------------------------------------------------------- main


def _fit(plan: Plan, rate: float, seconds: float) -> int:
    """How many rows (whole 10,000s, at most --rows) an import at ``rate`` does in ``seconds``."""
    return min(plan.rows, max(int(rate * seconds) // 10_000 * 10_000, 0))


# Per import, beside the rows: setup, start-up, the wait for the next poll, the checks.
OVERHEAD_SECONDS = 40.0
# What the end of the run needs: the report, stopping processes, removing files.
RESERVE_SECONDS = 20.0


async def run(plan: Plan, output: Path | None, wait_quiet: float) -> int:
    started = datetime.now(UTC)
    t_start = time.monotonic()
    # Everything, the wait for a quiet machine included, ends by this deadline.
    deadline = t_start + plan.max_minutes * 60
    common.quiet_logs()
    busy = common.wait_quiet(min(wait_quiet, plan.max_minutes * 60 / 4))
    pg = await common.pg_version()
    autovacuum = await common.pg_setting("autovacuum")
    pg_label = f"PostgreSQL {pg}".strip()
    folder = common.temp_folder("attain-bench-sftp-")
    scratch = folder / "scratch"
    scratch.mkdir()
    sshd = None
    figs: list[ImportFigures] = []
    estimate: ImportFigures | None = None
    floor = Floor(0, [], [])
    statements: statements_floor.StatementsFloor | None = None

    def left() -> float:
        return deadline - time.monotonic() - RESERVE_SECONDS

    try:
        sshd = Sshd(folder)
        staging = sshd.root / "staging"
        staging.mkdir()
        now = datetime.now(UTC)
        rows = plan.rows
        if plan.estimate and rows > ESTIMATE_ROWS:
            print(f"estimating with {ESTIMATE_ROWS:,} rows on SQLite ...", file=sys.stderr)
            small = staging / "estimate.csv"
            expected = generate(small, ESTIMATE_ROWS, plan.members, now)
            async with _sqlite_url("attain-bench-sftp-est-") as url:
                estimate = await run_import(
                    "SQLite (estimate)",
                    url,
                    sshd,
                    small,
                    ESTIMATE_ROWS,
                    expected,
                    plan,
                    scratch,
                    deadline,
                    0.0,
                )
            small.unlink()
            _print_fig(estimate)
            share = 0.5 if plan.postgres else 1.0
            rows = _fit(plan, estimate.pull_rate, left() * share - OVERHEAD_SECONDS)
            if rows < plan.rows:
                print(
                    f"  {plan.rows:,} rows would take ~{plan.rows / estimate.pull_rate:.0f} s: "
                    f"importing {rows:,} rows instead",
                    file=sys.stderr,
                )
            rows = max(rows, ESTIMATE_ROWS)
        print(f"generating {rows:,} rows for {plan.members:,} members ...", file=sys.stderr)
        staged = staging / FILE
        expected = generate(staged, rows, plan.members, now)
        print("sftp floor ...", file=sys.stderr)
        floor = sftp_floor(sshd, staged, plan.floor_runs, scratch)
        if plan.statements_rows:
            print("SQLite statements floor ...", file=sys.stderr)
            statements = await statements_floor.run(
                plan.statements_rows, plan.members, BATCH_TRANSACTIONS
            )
            print(f"  {statements.describe()}", file=sys.stderr)
        print(
            f"  {floor.median:.2f} s, of which login {floor.login:.2f} s "
            f"({floor.mb_per_s:,.0f} MB/s)",
            file=sys.stderr,
        )
        print(f"SQLite: worker import of {rows:,} rows ...", file=sys.stderr)
        try:
            async with _sqlite_url("attain-bench-sftp-") as url:
                fig = await run_import(
                    "SQLite",
                    url,
                    sshd,
                    staged,
                    rows,
                    expected,
                    plan,
                    scratch,
                    deadline,
                    plan.profile_seconds,
                )
        except OutOfTime as exc:
            fig = ImportFigures("SQLite", rows, skipped=exc.text)
        figs.append(fig)
        _print_fig(fig)
        if plan.postgres:
            why = await common.pg_available()
            pg_rows = rows
            if not why:
                # PostgreSQL is not measured yet: size it at 60% of the SQLite rate.
                rate = 0.6 * (fig.pull_rate or (estimate.pull_rate if estimate else 0.0))
                if rate and plan.estimate:
                    pg_rows = _fit(plan, rate, left() - OVERHEAD_SECONDS)
                    pg_rows = min(pg_rows, rows)
                if pg_rows < 10_000:
                    why = f"not enough time left in the {plan.max_minutes:g}-minute budget"
            if why:
                figs.append(ImportFigures(pg_label, rows, skipped=why))
            else:
                if pg_rows < rows:
                    print(f"generating {pg_rows:,} rows for PostgreSQL ...", file=sys.stderr)
                    expected = generate(staged, pg_rows, plan.members, now)
                print(f"{pg_label}: worker import of {pg_rows:,} rows ...", file=sys.stderr)
                try:
                    async with common.pg_database("attain_bench_sftp") as url:
                        pfig = await run_import(
                            pg_label,
                            url,
                            sshd,
                            staged,
                            pg_rows,
                            expected,
                            plan,
                            scratch,
                            deadline,
                            plan.profile_seconds,
                        )
                except OutOfTime as exc:
                    pfig = ImportFigures(pg_label, pg_rows, skipped=exc.text)
                figs.append(pfig)
                _print_fig(pfig)
    finally:
        if sshd is not None:
            sshd.stop()
        _stop_all()
        common.remove_folder(folder)
    elapsed = time.monotonic() - t_start
    print()
    print("\n".join(figures_table(floor, estimate, figs)))
    print()
    print("\n".join(targets_table(plan, figs, statements)))
    for f in figs:
        if f.profile is not None:
            print(f"\n{f.database} worker profile: {f.profile.sentences(8)}")
    if output is not None:
        common.write_section(
            output,
            HEADING,
            markdown(
                plan, started, pg, autovacuum, busy, floor, estimate, figs, elapsed, statements
            ),
        )
        print(f"\nwrote the {HEADING!r} section of {output}")
    return 0


def _print_fig(f: ImportFigures) -> None:
    if f.skipped:
        print(f"  {f.database}: {f.skipped}", file=sys.stderr)
        return
    print(
        f"  {f.database}: poll wait {f.poll_wait:.1f} s, pull {f.pull_seconds:.1f} s "
        f"(hash {f.sha_seconds:.1f} s, import {f.duration_ms / 1000:.1f} s = "
        f"{f.import_rate:,.0f} rows/s), RSS {f.rss_start_mb:.0f} -> {f.rss_peak_mb:.0f} MB, "
        f"{f.worker_cores:.2f} cores",
        file=sys.stderr,
    )


@contextlib.asynccontextmanager
async def _sqlite_url(prefix: str) -> Any:
    folder = common.temp_folder(prefix)
    try:
        yield f"sqlite+aiosqlite:///{folder / 'attain.db'}"
    finally:
        common.remove_folder(folder)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sftp_import", description=__doc__)
    parser.add_argument("--rows", type=int, default=Plan.rows)
    parser.add_argument("--members", type=int, default=Plan.members)
    parser.add_argument("--max-minutes", type=float, default=Plan.max_minutes)
    parser.add_argument("--profile-seconds", type=float, default=Plan.profile_seconds)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--no-estimate", action="store_true", help="import --rows whatever it takes"
    )
    parser.add_argument("--wait-quiet", type=float, default=120.0, help="seconds, at most")
    parser.add_argument("--output", type=Path, default=common.DOCS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not SSHD.exists():
        print("no /usr/sbin/sshd: run scripts/ensure-sshd first", file=sys.stderr)
        return 2
    plan = Plan(
        rows=args.rows,
        members=args.members,
        max_minutes=args.max_minutes,
        profile_seconds=args.profile_seconds,
        postgres=not args.no_postgres,
        estimate=not args.no_estimate,
    )
    # A backstop: the run keeps its own deadline; this ends it (cleaning up) if that fails.
    common.arm(plan.max_minutes * 60 + 90)
    return asyncio.run(run(plan, None if args.no_write else args.output, args.wait_quiet))


if __name__ == "__main__":
    raise SystemExit(main())
