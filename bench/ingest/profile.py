"""Where a server spends its time: py-spy samples of the GIL holder, summarised by layer.

py-spy (`pip install py-spy` into the venv; not part of requirements.lock) records the
server process while a workload runs, after the measured runs so it cannot distort them.
Only samples of the thread that holds the GIL count: in a Python server that is the CPU
work that competes for the one interpreter. SQLAlchemy's async layer runs its sync code in
greenlets, whose stacks py-spy shows apart from the coroutine that awaits them, so the
share of an Attain function counts its own frames and what it calls outside greenlets:
a lower bound.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .. import common
from .cpu import thread_seconds

RATE = 200
TOP = 8
# Frames every sample passes through: not worth listing as "Attain functions". (The entry
# points live in attain_service, outside attain_server/, so they are never listed either.)
ROOT_FILES = ("attain_server/api/gate.py",)
# Native code has no Python frame: py-spy charges it to the callback that called it.
LOOP = "asyncio loop and native code in its callbacks (gRPC Cython, protobuf, greenlet)"
LAYERS: tuple[tuple[str, str], ...] = (
    ("attain_server/api/", "Attain api (servicers, mapping, gate)"),
    ("attain_server/application/", "Attain application (ingest, standings)"),
    ("attain_server/domain/", "Attain domain (KPIs, periods, validation)"),
    ("attain_server/store/", "Attain store (codec, column types)"),
    ("attain_server/", "Attain other"),
    ("sqlalchemy/", "SQLAlchemy / SQLModel"),
    ("sqlmodel/", "SQLAlchemy / SQLModel"),
    ("aiosqlite/", "aiosqlite (thread hop per call)"),
    ("asyncpg/", "asyncpg"),
    ("grpc/", "grpc (Python side)"),
    ("google/protobuf/", "protobuf"),
    ("asyncio/", LOOP),
    ("selectors.py", LOOP),
    ("structlog/", "structlog"),
    ("json/", "json"),
    ("decimal", "decimal"),
    ("dataclass, generated", "dataclass __init__ (generated)"),
)


@dataclass(frozen=True)
class Profile:
    workload: str
    seconds: float
    samples: int
    # Thread name -> cores used during the window (1.0: one core busy all the time).
    threads: tuple[tuple[str, float], ...]
    by_layer: tuple[tuple[str, float], ...]
    top_self: tuple[tuple[str, float], ...]
    top_attain: tuple[tuple[str, float], ...]

    def layer_share(self, *prefixes: str) -> float:
        return sum(share for layer, share in self.by_layer if layer.startswith(prefixes))


def _parse(frame: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame "func (path/file.py:123)"; generated dataclass
    methods get a name of their own."""
    func, path = common.parse_frame(frame)
    if path == "<string>" and func.startswith("__create_fn__"):
        return "__init__", "dataclass, generated"
    return func, path


def _layer(path: str) -> str:
    for prefix, layer in LAYERS:
        if prefix in path:
            return layer
    return "other (stdlib, native)"


def summarise(raw: str, workload: str, seconds: float, threads: dict[str, float]) -> Profile:
    """Turns py-spy's raw (collapsed) output into shares of the samples."""
    total = 0
    layers: collections.Counter[str] = collections.Counter()
    selfs: collections.Counter[str] = collections.Counter()
    attain: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("thread (")]
        total += n
        if not frames:
            layers["other (stdlib, native)"] += n
            continue
        func, path = _parse(frames[-1])
        layers[_layer(path)] += n
        selfs[f"{func} ({path})"] += n
        seen = set()
        for frame in frames:
            func, path = _parse(frame)
            if "attain_server/" in path and not path.endswith(ROOT_FILES):
                seen.add(f"{func} ({path})")
        for key in seen:
            attain[key] += n

    def shares(counter: collections.Counter[str], top: int | None) -> tuple[tuple[str, float], ...]:
        return tuple((k, v / total) for k, v in counter.most_common(top)) if total else ()

    return Profile(
        workload=workload,
        seconds=seconds,
        samples=total,
        threads=tuple(sorted(threads.items(), key=lambda kv: -kv[1])),
        by_layer=shares(layers, None),
        top_self=shares(selfs, TOP),
        top_attain=shares(attain, TOP),
    )


def _thread_label(pid: int, tid: int, name: str) -> str:
    if tid == pid:
        return "event loop (main thread)"
    if name.startswith(("event_engine", "grpc")):
        return "gRPC core threads"
    return "other Python threads (gRPC poller, aiosqlite workers if any)"


def _thread_cores(
    pid: int,
    before: dict[tuple[int, str], float],
    after: dict[tuple[int, str], float],
    seconds: float,
) -> dict[str, float]:
    """Cores used per kind of thread (1.0: one core busy all the time)."""
    out: dict[str, float] = collections.defaultdict(float)
    for (tid, name), value in after.items():
        out[_thread_label(pid, tid, name)] += (value - before.get((tid, name), 0.0)) / seconds
    return {k: v for k, v in out.items() if v >= 0.01}


async def record(
    pid: int,
    workload: str,
    seconds: float,
    out_dir: Path,
    load: Callable[[float], Awaitable[object]],
) -> Profile | None:
    """Records ``pid`` for ``seconds`` while ``load(seconds + margin)`` runs."""
    spy = common.py_spy()
    if spy is None:
        return None
    out = out_dir / f"py-spy-{re.sub(r'[^A-Za-z0-9]+', '-', workload)}.txt"
    # --nonblocking: do not pause the server per sample (less distortion).
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--gil",
        "--threads",
        "--nonblocking",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.sleep(1.0)  # attaching takes a moment
        before, began = thread_seconds(pid), time.perf_counter()
        await load(seconds + 0.5)
        after, elapsed = thread_seconds(pid), time.perf_counter() - began
        _, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0 or not out.exists():
        print(f"py-spy failed: {err.decode(errors='replace').strip()}", file=sys.stderr)
        return None
    threads = _thread_cores(pid, before, after, elapsed)
    return summarise(out.read_text(), workload, float(int(seconds)), threads)


def available() -> str:
    """Why profiling is off, or "" when py-spy can attach here."""
    if common.py_spy() is None:
        return "py-spy is not installed (.venv/bin/pip install py-spy)"
    if sys.platform != "linux":
        return "profiling needs Linux /proc"
    if os.geteuid() != 0 and Path("/proc/sys/kernel/yama/ptrace_scope").exists():
        scope = Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
        if scope not in ("0", "1"):
            return f"ptrace is restricted (kernel.yama.ptrace_scope={scope})"
    return ""
