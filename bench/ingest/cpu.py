"""CPU time from /proc (Linux): per process, per thread, for PostgreSQL, and for the machine."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: Path) -> tuple[str, list[str]] | None:
    """(command name, fields after it) of a /proc stat file; None when it is gone."""
    try:
        raw = path.read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    return name, raw[raw.rindex(")") + 2 :].split()


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    stat = _stat_fields(Path(f"/proc/{pid}/stat"))
    if stat is None:
        return 0.0
    fields = stat[1]
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_seconds(pid: int) -> dict[tuple[int, str], float]:
    """CPU seconds per thread of a process, keyed by (thread id, thread name)."""
    out: dict[tuple[int, str], float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            stat = _stat_fields(task / "stat")
            if stat is not None:
                name, fields = stat
                out[(int(task.name), name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


# PostgreSQL's shared background processes, whose work our writes cause too.
PG_HELPERS = ("checkpointer", "background writer", "walwriter", "wal writer")


def postgres_seconds(database: str) -> dict[int, float]:
    """CPU seconds per process of PostgreSQL's backends on ``database`` and its writers."""
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat_fields(entry / "stat")
        if stat is None or stat[0] != "postgres":
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if f" {database} " in f"{title} " or title.endswith(PG_HELPERS):
            fields = stat[1]
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def self_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    cols = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = cols[3] + (cols[4] if len(cols) > 4 else 0)
    return sum(cols) - idle, sum(cols)


def background_load(seconds: float = 1.0) -> float:
    """How busy the machine is while the benchmark does nothing: busy CPUs (e.g. 0.05)."""
    busy0, total0 = _machine_ticks()
    time.sleep(seconds)
    busy1, total1 = _machine_ticks()
    cpus = os.cpu_count() or 1
    return (busy1 - busy0) / max(total1 - total0, 1) * cpus


@dataclass(frozen=True)
class Usage:
    """CPU seconds used during a span: the server, this client, and PostgreSQL."""

    server: float = 0.0
    client: float = 0.0
    database: float = 0.0


class Meter:
    """Measures the CPU the server, the client and PostgreSQL use between start() and stop().

    PostgreSQL counts the backends of ``database`` and the shared writers; a backend that
    exits before stop() is not counted.
    """

    def __init__(self, server_pid: int, database: str = "") -> None:
        self._pid = server_pid
        self._database = database
        self._server = self._client = 0.0
        self._pg: dict[int, float] = {}

    def _pg_now(self) -> dict[int, float]:
        return postgres_seconds(self._database) if self._database else {}

    def start(self) -> None:
        self._server, self._client, self._pg = (
            process_seconds(self._pid),
            self_seconds(),
            self._pg_now(),
        )

    def stop(self) -> Usage:
        pg = self._pg_now()
        return Usage(
            process_seconds(self._pid) - self._server,
            self_seconds() - self._client,
            sum(seconds - self._pg.get(pid, 0.0) for pid, seconds in pg.items()),
        )
