"""Server subprocesses: start on a free loopback port, find that port, stop for sure.

Every process started here is registered, so `stop_all()` (called from a `finally` and at
exit) terminates whatever is still running, even when the benchmark fails half-way.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class ServerProcess:
    """A server subprocess listening on ``LOOPBACK:port``; its output goes to ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    found_by: str = ""
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (graceful stop), then SIGKILL if it has not exited in time."""
        if self._stopped:
            return
        self._stopped = True
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(STOP_TIMEOUT_SECONDS)
        _RUNNING.discard(self)

    def __hash__(self) -> int:
        return id(self)


_RUNNING: set[ServerProcess] = set()


def stop_all() -> None:
    for proc in list(_RUNNING):
        proc.stop()


atexit.register(stop_all)


def spawn(
    name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> ServerProcess:
    """Starts ``argv`` in its own session (a Ctrl-C reaches only the benchmark, which stops it)."""
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=REPO,
        )
    proc = ServerProcess(name, popen, log_path)
    _RUNNING.add(proc)
    return proc


def _listening_line_port(log_path: Path) -> int | None:
    """The port from a JSON ``listening`` line (``address`` "host:port" or ``port``), if any."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event") != "listening":
            continue
        if "port" in event:
            return int(event["port"])
        if "address" in event:
            return int(str(event["address"]).rsplit(":", 1)[1])
    return None


def _proc_listening_ports(pid: int) -> set[int]:
    """TCP ports a process listens on, from /proc (Linux): its socket inodes in LISTEN state."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


async def wait_for_port(proc: ServerProcess) -> int:
    """The port the server listens on: its JSON "listening" log line, else its LISTEN socket.

    attain-server logs "listening" at INFO, which ATTAIN_LOG_LEVEL=WARNING filters out; the
    /proc fallback finds the port without relying on the log level.
    """
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with status {proc.popen.returncode}:\n{proc.log_tail()}"
            )
        port = _listening_line_port(proc.log_path)
        if port:
            proc.port, proc.found_by = port, "its JSON listening line"
            return port
        ports = _proc_listening_ports(proc.pid)
        if len(ports) == 1:
            proc.port, proc.found_by = ports.pop(), "its LISTEN socket in /proc"
            return proc.port
        await asyncio.sleep(0.05)
    raise TimeoutError(
        f"{proc.name} did not listen within {START_TIMEOUT_SECONDS:.0f} s:\n{proc.log_tail()}"
    )


async def wait_serving(proc: ServerProcess) -> None:
    """Waits until the gRPC health service answers SERVING (attain-server sets it last)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with grpc.aio.insecure_channel(proc.address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # typeshed types the sync stub only
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline or proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} is not SERVING:\n{proc.log_tail()}")
            await asyncio.sleep(0.05)


async def start_echo(log_path: Path) -> ServerProcess:
    proc = spawn(
        "echo server",
        [sys.executable, "-m", "bench.ingest.echo", f"{LOOPBACK}:0"],
        log_path,
    )
    await wait_for_port(proc)  # it logs "listening" after server.start(): it is ready
    return proc


def attain_command() -> list[str]:
    script = VENV_BIN / "attain-server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "attain_service.main"]


async def start_attain(
    database_url: str, log_path: Path, extra: tuple[str, ...] = ()
) -> ServerProcess:
    """attain-server serve on a free loopback port, logging only warnings and errors."""
    proc = spawn(
        "attain-server",
        [
            *attain_command(),
            "serve",
            "--listen",
            f"{LOOPBACK}:0",
            "--database-url",
            database_url,
            *extra,
        ],
        log_path,
        env={
            "ATTAIN_LOG_LEVEL": "WARNING",
            "ATTAIN_LOG_FORMAT": "json",
            "ATTAIN_SHUTDOWN_GRACE_SECONDS": "2",
        },
    )
    await wait_for_port(proc)
    await wait_serving(proc)
    return proc
