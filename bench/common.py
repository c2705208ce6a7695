"""Helpers shared by the benchmarks under bench/: the machine line, medians, throwaway
databases, bulk loading, py-spy, a quiet machine and rewriting one section of
docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from attain_server import logging as attain_logging
from attain_server.store.engine import Database
from attain_server.store.tables import MemberRow

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
PG_ADMIN_URL = os.environ.get("ATTAIN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NEW_FILE = (
    "# Benchmarks\n\n"
    "Figures from the benchmarks under `bench/`; each one rewrites only its own section.\n"
)
LOAD_CHUNK = 10_000

# What a hard stop (watchdog, Ctrl-C, SIGTERM) must clean up when the normal `finally`
# blocks cannot run: throwaway databases, temp folders and child processes.
_DATABASES: set[str] = set()
_FOLDERS: set[Path] = set()
CHILDREN: list[subprocess.Popen[bytes]] = []


def temp_folder(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    _FOLDERS.add(folder)
    return folder


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    _FOLDERS.discard(folder)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(grace)
    with contextlib.suppress(ValueError):
        CHILDREN.remove(proc)


def hard_stop(reason: str, code: int = 3) -> None:
    """Cleans up everything registered, then exits at once (from any thread)."""
    print(f"\nstopping: {reason}; cleaning up ...", file=sys.stderr, flush=True)
    for proc in list(CHILDREN):
        with contextlib.suppress(Exception):
            stop_process(proc, 3.0)
    if _DATABASES:

        async def drop() -> None:
            conn = await _pg_admin()
            try:
                for name in list(_DATABASES):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        # A thread of its own: the main thread may be inside a running event loop.
        worker = threading.Thread(target=lambda: asyncio.run(drop()), daemon=True)
        worker.start()
        worker.join(30)
    for folder in list(_FOLDERS):
        shutil.rmtree(folder, ignore_errors=True)
    os._exit(code)


def arm(seconds: float) -> None:
    """A watchdog that ends the run after ``seconds``, and Ctrl-C/SIGTERM doing the same."""
    timer = threading.Timer(seconds, hard_stop, (f"the run took over {seconds:.0f} s",))
    timer.daemon = True
    timer.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: hard_stop(signal.Signals(signum).name, 130))


def quiet_logs() -> None:
    """Attain's structlog at WARNING: no per-close "cycle closed" lines in the table output."""
    attain_logging.configure(fmt="json", level="WARNING")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what platform knows)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return model or platform.processor() or "unknown CPU"


def memory_gb() -> float:
    """Total memory from /proc/meminfo, in GiB (0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def machine_line(started: datetime, postgres: str = "") -> str:
    return (
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {len(os.sched_getaffinity(0))} CPUs (nproc; "
        f"{cpu_model()}, {memory_gb():.0f} GB), "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
        + (f", PostgreSQL {postgres} at 127.0.0.1:5432" if postgres else "")
    )


async def pg_setting(name: str) -> str:
    """A setting of the PostgreSQL cluster as SHOW gives it ("on", "16.4 (Debian ...)"), or
    "" when PostgreSQL does not answer."""
    try:
        conn = await _pg_admin()
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return ""
    try:
        return str(await conn.fetchval("SELECT current_setting($1)", name))
    finally:
        await conn.close()


async def pg_version() -> str:
    version = await pg_setting("server_version")
    return version.split()[0] if version else ""


# ---------------------------------------------------------------- throwaway databases


@asynccontextmanager
async def sqlite_database(prefix: str) -> AsyncIterator[Database]:
    """A migrated SQLite database in a temp folder, removed afterwards."""
    folder = temp_folder(prefix)
    db = Database(f"sqlite+aiosqlite:///{folder / 'attain.db'}")
    try:
        await db.migrate()
        yield db
    finally:
        await db.dispose()
        remove_folder(folder)


async def _pg_admin() -> Any:
    url = make_url(PG_ADMIN_URL)
    return await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )


async def pg_available() -> str:
    """ "" when PostgreSQL answers, else why not."""
    try:
        conn = await _pg_admin()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer ({exc})"
    await conn.close()
    return ""


@asynccontextmanager
async def pg_database(prefix: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (its asyncpg URL), dropped afterwards."""
    conn = await _pg_admin()
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    _DATABASES.add(name)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
        _DATABASES.discard(name)


async def analyze(db: Database) -> None:
    """PostgreSQL: fresh planner statistics after a bulk load (what autovacuum would do)."""
    if db.dialect == "postgresql":
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()


# ---------------------------------------------------------------- bulk loading


async def insert_rows(db: Database, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Core executemany in chunks, one unit of work."""
    async with db.write() as s:
        for i in range(0, len(rows), LOAD_CHUNK):
            await s.exec(insert(table), params=list(rows[i : i + LOAD_CHUNK]))


async def load_members(db: Database, brand: str, ids: Sequence[str], now: datetime) -> None:
    table = MemberRow.__table__  # type: ignore[attr-defined]
    await insert_rows(
        db,
        table,
        [
            {
                "brand_code": brand,
                "external_id": m,
                "display_name": "",
                "level": "",
                "groups": [],
                "create_time": now,
                "update_time": now,
            }
            for m in ids
        ],
    )


# ---------------------------------------------------------------- docs/benchmarks.md


def write_section(path: Path, heading: str, section: str) -> None:
    """Replaces the section under ``heading`` (up to the next "## " or "# " heading) or
    appends it; every other section stays as it is."""
    text = path.read_text() if path.exists() else NEW_FILE
    lines = text.splitlines()
    body = section.rstrip("\n").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *body]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith(("## ", "# "))),
            len(lines),
        )
        rest = lines[end:]
        lines = [*lines[:start], *body, *(["", *rest] if rest else [])]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table: the first row is the head."""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(" --- " for _ in rows[0]) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return out


# ---------------------------------------------------------------- py-spy


def py_spy() -> str | None:
    """The py-spy next to this interpreter, else on PATH (it is not in requirements.lock)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profile:
    """Shares of py-spy samples: by frame (self time) and by Attain function (inclusive)."""

    samples: int = 0
    top_self: list[tuple[str, float]] = field(default_factory=list)
    top_attain: list[tuple[str, float]] = field(default_factory=list)
    by_layer: list[tuple[str, float]] = field(default_factory=list)
    note: str = ""

    def sentences(self, top: int = 6) -> str:
        if not self.samples:
            return self.note or "no profile"
        layers = ", ".join(f"{k} {v:.0%}" for k, v in self.by_layer[:6])
        selfs = "; ".join(f"`{k}` {v:.0%}" for k, v in self.top_self[:top])
        attain = "; ".join(f"`{k}` {v:.0%}" for k, v in self.top_attain[:top])
        return (
            f"{self.samples:,} samples (GIL held). By layer of the running frame: {layers}. "
            f"Top frames (self): {selfs}. By innermost Attain function (with the library code "
            f"it calls): {attain}."
        )


LAYERS: tuple[tuple[str, str], ...] = (
    ("attain_server/", "Attain"),
    ("attain_worker/", "Attain worker"),
    ("sqlalchemy/", "SQLAlchemy/SQLModel"),
    ("sqlmodel/", "SQLAlchemy/SQLModel"),
    ("pydantic", "pydantic"),
    ("aiosqlite/", "aiosqlite"),
    ("asyncpg/", "asyncpg"),
    ("asyncssh/", "asyncssh"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
    ("csv", "csv"),
    ("decimal", "decimal"),
    ("hashlib", "hashlib"),
)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def parse_frame(text: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame "func (path/file.py:123)"."""
    m = FRAME.match(text)
    return (m.group("func"), m.group("file")) if m else (text, "")


def summarise(raw: str) -> Profile:
    """Shares of the samples: by leaf frame (self time), by layer of the leaf, and by the
    innermost Attain function on the stack (its own time plus the library code it calls).
    SQLAlchemy runs statements in a greenlet whose stack py-spy shows on its own: those
    samples have no Attain frame and count under their root frame."""
    total = 0
    selfs: collections.Counter[str] = collections.Counter()
    attain: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        if not frames:
            continue
        total += n
        func, path = parse_frame(frames[-1])
        selfs[f"{func} ({path})"] += n
        layers[next((name for p, name in LAYERS if p in path), "other")] += n
        owner = ""
        for f in reversed(frames):
            func, path = parse_frame(f)
            if "attain_server/" in path or "attain_worker/" in path:
                owner = f"{func} ({path.rsplit('/', 1)[-1]})"
                break
        if not owner:
            func, path = parse_frame(frames[0])
            if any("aiosqlite/" in f for f in frames):
                owner = "aiosqlite's thread (the sqlite3 calls)"
            elif func == "Session.exec":
                owner = "SQLAlchemy in its greenlet (statements, binding, ORM loading)"
            elif func == "_run_module_as_main" or "<module>" in func:
                leaf_path = parse_frame(frames[-1])[1]
                leaf = next((name for p, name in LAYERS if p in leaf_path), "other")
                owner = f"the event loop itself (running {leaf} callbacks)"
            else:
                owner = f"no Attain frame: {func} ({path.rsplit('/', 1)[-1]})"
        attain[owner] += n
    if not total:
        return Profile(note="py-spy recorded no samples")
    return Profile(
        samples=total,
        top_self=[(k, v / total) for k, v in selfs.most_common(10)],
        top_attain=[(k, v / total) for k, v in attain.most_common(12)],
        by_layer=[(k, v / total) for k, v in layers.most_common()],
    )


class Spy:
    """py-spy recording a process until ``stop()`` (raw format, GIL samples only)."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        self._found: Profile | None = None
        spy = py_spy()
        self.note = "" if spy else "py-spy is not installed (.venv/bin/pip install py-spy)"
        if spy:
            self.proc = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(rate),
                    "--format",
                    "raw",
                    "--gil",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # attaching takes a moment

    @property
    def recording(self) -> bool:
        """py-spy was started and has not been stopped yet."""
        return self.proc is not None and self._found is None

    def stop(self) -> Profile:
        """Stops py-spy and summarises its samples; later calls return the same profile."""
        if self._found is None:
            self._found = self._stop()
        return self._found

    def _stop(self) -> Profile:
        if self.proc is None:
            return Profile(note=self.note)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return Profile(note="py-spy did not stop")
        if not self.out.exists():
            return Profile(note=f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
        return summarise(self.out.read_text())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- a quiet machine


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def busy_cpus(seconds: float = 1.0) -> float:
    """How many CPUs other work keeps busy, over ``seconds`` (call it while idle)."""
    b0, t0 = _cpu_ticks()
    time.sleep(seconds)
    b1, t1 = _cpu_ticks()
    return (b1 - b0) / max(t1 - t0, 1) * len(os.sched_getaffinity(0))


QUIET_CPUS = 0.25


def wait_quiet(max_wait: float) -> float:
    """Waits (up to ``max_wait`` seconds) until under QUIET_CPUS are busy; returns the last
    figure, so the report can say how quiet the machine was."""
    deadline = time.monotonic() + max_wait
    busy = busy_cpus()
    announced = False
    while busy > QUIET_CPUS and time.monotonic() < deadline:
        if not announced:
            print(
                f"  other work keeps {busy:.2f} CPUs busy: waiting up to {max_wait:.0f} s "
                "for a quiet machine ...",
                file=sys.stderr,
            )
            announced = True
        busy = busy_cpus(2.0)
    return busy


def quiet_note(busy: float) -> str:
    if busy <= QUIET_CPUS:
        return f"Before the run other work kept {busy:.2f} CPUs busy (quiet)."
    return (
        f"**Before the run other work kept {busy:.2f} CPUs busy: the machine was not quiet, "
        "expect lower figures than on a quiet one.**"
    )
