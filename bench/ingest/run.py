"""The benchmark run: echo baseline, then Attain on SQLite and on PostgreSQL, then the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc
from sqlalchemy.engine import make_url

from .. import common
from . import echo, load, procs, profile, report, workload
from .cpu import Meter, background_load
from .load import Figure, Run
from .workload import Metadata, bearer, member_id

# How long the worker may take to open the month's cycle for every member.
CYCLE_OPEN_TIMEOUT = 120.0
# The whole run stops by itself after this, cleaning up like on any failure.
WATCHDOG_SECONDS = 9 * 60
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ("grpc.max_send_message_length", 32 * 1024 * 1024),
]
# Raw callables: requests and replies stay bytes (no serializers).
Unary = grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
Stream = grpc.aio.StreamUnaryMultiCallable[bytes, bytes]
# An ingest key has this shape; the echo calls carry metadata of the same size.
FAKE_KEY = "atn_" + "0" * 16 + "_" + "x" * 43


@dataclass(frozen=True)
class Plan:
    """How long and how much: sized to keep the whole run near 5 minutes on 2 CPUs."""

    runs: int = 3
    concurrencies: tuple[int, ...] = (1, 32)
    unary_seconds: float = 5.0
    warmup_calls: int = 300
    warmup_seconds: float = 4.0
    members: int = 100_000
    unary_members: int = 10_000
    per_message: int = 1_000
    stream_total: int = 100_000
    # Stream runs are sized from the warm-up's rate to take about this long each
    # (at most stream_total / runs transactions).
    stream_seconds: float = 7.0
    echo_stream_seconds: float = 2.0
    progress_calls: int = 2_000
    progress_seconds: float = 5.0
    profile_seconds: float = 4.0

    @property
    def messages_per_run(self) -> int:
        return math.ceil(self.stream_total / self.per_message / self.runs)


QUICK = Plan(
    unary_seconds=1.5,
    warmup_calls=100,
    warmup_seconds=1.5,
    members=20_000,
    unary_members=2_000,
    stream_total=6_000,
    stream_seconds=4.0,
    echo_stream_seconds=1.0,
    progress_calls=300,
    progress_seconds=2.0,
    profile_seconds=2.0,
)


@dataclass
class EchoResult:
    payload_bytes: int
    message_bytes: int
    unary: dict[int, Figure] = field(default_factory=dict)
    stream: Figure = field(default_factory=Figure)


@dataclass
class AttainResult:
    database: str
    skipped: str = ""
    unary: dict[int, Figure] = field(default_factory=dict)
    stream: Figure = field(default_factory=Figure)
    progress: Figure = field(default_factory=Figure)
    # Members with a progress row that GetProgress picked from (of plan.members).
    progress_pool: int = 0
    members_seconds: float = 0.0
    cycle_open_seconds: float = 0.0
    port_found_by: str = ""
    warnings: list[str] = field(default_factory=list)
    profiles: list[profile.Profile] = field(default_factory=list)
    profile_note: str = ""
    autovacuum: str = ""
    analyzed: int = 0
    # Per concurrency: each unary run's rate over an echo run started right after it (the
    # machine's speed drifts between the echo baseline at the start and this database).
    paired: dict[int, tuple[float, ...]] = field(default_factory=dict)


def _say(label: str) -> None:
    print(f"  {label}", file=sys.stderr, flush=True)


def _fmt(run: Run) -> str:
    latency = (
        f", p50 {run.percentile_ms(50):.2f} ms, p99 {run.percentile_ms(99):.2f} ms"
        if run.latencies
        else ""
    )
    return f"{run.items:,} in {run.seconds:.2f} s = {run.rate:,.0f}/s{latency}"


# ---------------------------------------------------------------- echo


def _check_echo_stream(reply: bytes, run: Run) -> None:
    """The echo server answers a stream with how many messages it read: every one sent."""
    read = json.loads(reply)["messages"]
    if read != run.messages:
        raise AssertionError(f"the echo server read {read} of {run.messages} messages")


async def _echo_run(
    call: Unary,
    requests: list[bytes],
    metadata: Metadata,
    concurrency: int,
    seconds: float,
    meter: Meter | None = None,
) -> Run:
    """One run of unary calls to an echo server, checked: every reply is one of the requests
    (replies come in completion order)."""
    run, replies = await load.unary(
        call, requests, metadata, concurrency=concurrency, seconds=seconds, meter=meter
    )
    if not replies or not set(replies[:100]) <= set(requests):
        raise AssertionError("the echo server did not echo")
    return run


async def bench_echo(plan: Plan, tmp: Path) -> EchoResult:
    print("echo baseline", file=sys.stderr, flush=True)
    requests = workload.record_requests("ECHO", 1, member_id)
    messages = workload.stream_messages("ECHO", 100, plan.per_message, member_id)
    result = EchoResult(payload_bytes=len(requests[0]), message_bytes=len(messages[0]))
    server = await procs.start_echo(tmp / "echo.log")
    metadata: Metadata = bearer(FAKE_KEY)
    try:
        async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as ch:
            call: Unary = ch.unary_unary(echo.UNARY)
            meter = Meter(server.pid)
            for concurrency in plan.concurrencies:
                warm = workload.record_requests("ECHO", plan.warmup_calls, member_id)
                run, _ = await load.unary(
                    call, warm, metadata, concurrency=concurrency, seconds=plan.warmup_seconds
                )
                cap = int(run.rate * plan.unary_seconds * 2) + 1_000
                requests = workload.record_requests(
                    "ECHO", cap, lambda i: member_id(i % plan.unary_members)
                )
                runs = []
                for _ in range(plan.runs):
                    run = await _echo_run(
                        call, requests, metadata, concurrency, plan.unary_seconds, meter
                    )
                    _say(f"unary, {concurrency} in flight: {_fmt(run)}")
                    runs.append(run)
                result.unary[concurrency] = Figure(tuple(runs))
            stream_call: Stream = ch.stream_unary(echo.STREAM)
            run, summary = await load.stream(
                stream_call, messages, metadata, items_per_message=plan.per_message, seconds=1
            )
            _check_echo_stream(summary, run)
            runs = []
            for _ in range(plan.runs):
                run, summary = await load.stream(
                    stream_call,
                    messages * 500,  # the same 100 messages again and again, until time is up
                    metadata,
                    items_per_message=plan.per_message,
                    seconds=plan.echo_stream_seconds,
                    meter=meter,
                )
                _check_echo_stream(summary, run)
                _say(f"stream: {run.messages:,} messages, {_fmt(run)}")
                runs.append(run)
            result.stream = Figure(tuple(runs))
    finally:
        server.stop()
    return result


# ---------------------------------------------------------------- databases


@dataclass
class Database:
    """The database under test, and how to refresh the planner's statistics on it."""

    url: str
    version: str
    # PostgreSQL: the cluster's autovacuum setting and how often the benchmark analyzed.
    autovacuum: str = ""
    analyzed: int = 0

    @property
    def name(self) -> str:
        """PostgreSQL: the database name ("" on SQLite)."""
        url = make_url(self.url)
        return url.database or "" if url.get_backend_name() == "postgresql" else ""

    async def analyze(self) -> None:
        """PostgreSQL: ANALYZE, as autovacuum would have by now (a no-op on SQLite).

        Outside the timed runs. Without statistics the ingest lookups are planned as a scan
        of the whole brand and cycle, and ingest slows down as the tables grow.
        """
        if not self.url.startswith("postgresql"):
            return
        url = make_url(self.url)
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
            timeout=5,
        )
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        self.analyzed += 1


@asynccontextmanager
async def sqlite_database(tmp: Path) -> AsyncIterator[Database]:
    folder = tmp / "sqlite"
    folder.mkdir()
    yield Database(
        f"sqlite+aiosqlite:///{folder / 'attain.db'}", f"SQLite {sqlite3.sqlite_version}"
    )


@asynccontextmanager
async def postgres_database() -> AsyncIterator[Database]:
    """A fresh database attain_bench_<random>, dropped at the end whatever happens."""
    admin = make_url(common.PG_ADMIN_URL)
    if admin.host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the benchmark talks to 127.0.0.1 only, not {admin.host}")
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=admin.port or 5432,
        user=admin.username,
        password=admin.password,
        database=admin.database or "postgres",
        timeout=5,
    )
    name = f"attain_bench_{secrets.token_hex(4)}"
    try:
        version = await conn.fetchval("SHOW server_version")
        autovacuum = await conn.fetchval("SHOW autovacuum")
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = admin.set(drivername="postgresql+asyncpg", host="127.0.0.1", database=name)
            yield Database(
                url.render_as_string(hide_password=False),
                f"PostgreSQL {version.split()[0]}",
                autovacuum=autovacuum,
            )
        finally:
            await asyncio.shield(conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await conn.close()


# ---------------------------------------------------------------- Attain


class AttainBench:
    """One database: setup, warm-up, measured runs, then profiles of what missed a target."""

    def __init__(
        self, plan: Plan, result: AttainResult, echo_result: EchoResult, db: Database
    ) -> None:
        self.plan = plan
        self.db = db
        self.result = result
        self.echo = echo_result
        self.unary_cursor = 0
        self.stream_cursor = 0

    def unary_member(self, offset: int) -> Callable[[int], str]:
        return lambda i: member_id((offset + i) % self.plan.unary_members)

    def stream_member(self, offset: int) -> Callable[[int], str]:
        """Stream sales go to the members after the unary ones: each its first of the month."""
        first = self.plan.unary_members
        return lambda i: member_id((first + offset + i) % self.plan.members)

    def unary_requests(self, tag: str, count: int) -> list[bytes]:
        requests = workload.record_requests(tag, count, self.unary_member(self.unary_cursor))
        self.unary_cursor += count
        return requests

    async def run(self, tmp: Path, no_profile_reason: str) -> None:
        plan, result, url = self.plan, self.result, self.db.url
        began = time.perf_counter()
        admin_key = await workload.create_brand(url)
        members_began = time.perf_counter()
        await workload.load_members(url, plan.members)
        result.members_seconds = time.perf_counter() - members_began
        await self.db.analyze()
        name = result.database.split()[0].lower()
        # The target and the ingest key through the API, on a server without the worker ...
        setup = await procs.start_attain(url, tmp / f"setup-{name}.log", ("--no-worker",))
        try:
            async with grpc.aio.insecure_channel(setup.address, options=CHANNEL_OPTIONS) as ch:
                ingest = bearer(await workload.configure(ch, admin_key))
        finally:
            setup.stop()
        # ... then the server as it runs by default: its worker's first clock tick opens
        # the month's cycle (a progress row at zero for every member) before we measure.
        log_path = tmp / f"attain-{name}.log"
        server = await procs.start_attain(url, log_path)
        # An echo server beside it, for a baseline run right after each unary run.
        paired_echo = await procs.start_echo(tmp / f"echo-{name}.log")
        try:
            result.port_found_by = server.found_by
            result.cycle_open_seconds = await workload.wait_cycle_open(url, CYCLE_OPEN_TIMEOUT)
            _say(
                f"setup: {time.perf_counter() - began:.1f} s ({plan.members:,} members; the "
                f"worker opened the cycle in {result.cycle_open_seconds:.1f} s)"
            )
            async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as ch:
                admin = bearer(admin_key)
                meter = Meter(server.pid, self.db.name)
                record: Unary = ch.unary_unary(workload.RECORD_TRANSACTION)
                records: Stream = ch.stream_unary(workload.RECORD_TRANSACTIONS)
                get: Unary = ch.unary_unary(workload.GET_PROGRESS)
                async with grpc.aio.insecure_channel(
                    paired_echo.address, options=CHANNEL_OPTIONS
                ) as echo_channel:
                    echo_call: Unary = echo_channel.unary_unary(echo.UNARY)
                    await self.measure_unary(record, ingest, meter, echo_call)
                await self.measure_stream(records, ingest, meter)
                await self.measure_progress(get, admin, meter)
                if no_profile_reason:
                    result.profile_note = no_profile_reason
                else:
                    await self.profile_missed(server.pid, tmp, record, records, get, ingest, admin)
        finally:
            server.stop()
            paired_echo.stop()
            result.warnings = [
                line
                for line in log_path.read_text(errors="replace").splitlines()
                if '"level": "warning"' in line or '"level": "error"' in line
            ]

    async def measure_unary(
        self,
        call: Unary,
        ingest: Metadata,
        meter: Meter,
        echo_call: Unary,
    ) -> None:
        plan = self.plan
        echo_metadata: Metadata = bearer(FAKE_KEY)
        for concurrency in plan.concurrencies:
            # The echo's requests are the same bytes as Attain's (a new id each).
            echo_requests = workload.record_requests(
                "PAIR",
                int(self.echo.unary[concurrency].rate * plan.unary_seconds * 3) + 1_000,
                lambda i: member_id(i % plan.unary_members),
            )
            await load.unary(
                echo_call,
                echo_requests[: plan.warmup_calls],
                echo_metadata,
                concurrency=concurrency,
                seconds=plan.warmup_seconds,
            )
            ratios = []
            await self.db.analyze()
            warm, replies = await load.unary(
                call,
                self.unary_requests(f"W{concurrency:02d}0", plan.warmup_calls),
                ingest,
                concurrency=concurrency,
                seconds=plan.warmup_seconds,
            )
            workload.check_recorded(replies)
            cap = int(warm.rate * plan.unary_seconds * 2) + 200
            runs = []
            for r in range(plan.runs):
                requests = self.unary_requests(f"U{concurrency:02d}{r}", cap)
                run, replies = await load.unary(
                    call,
                    requests,
                    ingest,
                    concurrency=concurrency,
                    seconds=plan.unary_seconds,
                    meter=meter,
                )
                workload.check_recorded(replies)
                self.unary_cursor -= cap - run.items
                _say(f"RecordTransaction, {concurrency} in flight: {_fmt(run)}")
                runs.append(run)
                paired = await _echo_run(
                    echo_call, echo_requests, echo_metadata, concurrency, plan.unary_seconds
                )
                ratios.append(run.rate / paired.rate)
                _say(f"  echo right after it: {_fmt(paired)} ({ratios[-1]:.0%})")
            self.result.unary[concurrency] = Figure(tuple(runs))
            self.result.paired[concurrency] = tuple(ratios)

    async def measure_stream(
        self,
        call: Stream,
        ingest: Metadata,
        meter: Meter,
    ) -> None:
        plan = self.plan
        # Warm-up on members that already have rows (the unary ones); its rate sizes the runs.
        await self.db.analyze()
        warm = workload.stream_messages("SW00", 2, plan.per_message, self.unary_member(0))
        first, summary = await load.stream(
            call, warm, ingest, items_per_message=plan.per_message, seconds=60
        )
        workload.check_stream_summary(summary, first.items)
        # A server reads a client stream at its own pace: size each run to take about
        # stream_seconds instead of relying on when the client stops sending.
        count = max(2, round(first.rate * plan.stream_seconds / plan.per_message))
        count = min(count, plan.messages_per_run)
        runs = []
        for r in range(plan.runs):
            await self.db.analyze()
            messages = workload.stream_messages(
                f"S00{r}", count, plan.per_message, self.stream_member(self.stream_cursor)
            )
            run, summary = await load.stream(
                call,
                messages,
                ingest,
                items_per_message=plan.per_message,
                seconds=plan.stream_seconds * 3,
                meter=meter,
            )
            workload.check_stream_summary(summary, run.items)
            self.stream_cursor += run.items
            _say(f"RecordTransactions: {run.messages} messages, {_fmt(run)}")
            runs.append(run)
        self.result.stream = Figure(tuple(runs))
        self.result.progress_pool = min(self.stream_cursor, plan.members)

    async def measure_progress(
        self,
        call: Unary,
        admin: Metadata,
        meter: Meter,
    ) -> None:
        plan, pool = self.plan, self.result.progress_pool
        await self.db.analyze()
        warm = workload.progress_requests(100, self.stream_member(0), pool, seed=0)
        await load.unary(call, warm, admin, concurrency=1, seconds=plan.warmup_seconds)
        runs = []
        for r in range(plan.runs):
            requests = workload.progress_requests(
                plan.progress_calls, self.stream_member(0), pool, seed=r + 1
            )
            run, replies = await load.unary(
                call, requests, admin, concurrency=1, seconds=plan.progress_seconds, meter=meter
            )
            workload.check_progress(replies)
            _say(f"GetProgress: {_fmt(run)}")
            runs.append(run)
        self.result.progress = Figure(tuple(runs))

    async def profile_missed(
        self,
        pid: int,
        tmp: Path,
        record: Unary,
        records: Stream,
        get: Unary,
        ingest: Metadata,
        admin: Metadata,
    ) -> None:
        plan, result = self.plan, self.result
        seconds = plan.profile_seconds
        missed = report.missed(result, self.echo)

        for concurrency in plan.concurrencies:
            if f"unary@{concurrency}" not in missed:
                continue
            rate = result.unary[concurrency].rate
            requests = self.unary_requests(
                f"P{concurrency:02d}0", int(rate * (seconds + 2) * 3) + 200
            )

            async def unary_load(
                duration: float, c: int = concurrency, r: list[bytes] = requests
            ) -> object:
                return await load.unary(record, r, ingest, concurrency=c, seconds=duration)

            await self._profile(pid, tmp, f"RecordTransaction, {concurrency} in flight", unary_load)
        if "stream" in missed:
            # The server reads whatever is sent: send about the profile's length of work.
            count = math.ceil(result.stream.rate * (seconds + 1) / plan.per_message) + 1
            messages = workload.stream_messages(
                "PS00", count, plan.per_message, self.stream_member(self.stream_cursor)
            )
            self.stream_cursor += count * plan.per_message

            async def stream_load(duration: float) -> object:
                return await load.stream(
                    records, messages, ingest, items_per_message=plan.per_message, seconds=duration
                )

            await self._profile(pid, tmp, "RecordTransactions stream", stream_load)
        if "progress" in missed:
            requests = workload.progress_requests(
                int(len(result.progress.runs[0].latencies) * (seconds + 2) / plan.progress_seconds)
                + 200,
                self.stream_member(0),
                result.progress_pool,
                seed=99,
            )

            async def progress_load(duration: float) -> object:
                return await load.unary(get, requests, admin, concurrency=1, seconds=duration)

            await self._profile(pid, tmp, "GetProgress", progress_load)

    async def _profile(
        self, pid: int, tmp: Path, workload_name: str, run: Callable[[float], Awaitable[object]]
    ) -> None:
        found = await profile.record(pid, workload_name, self.plan.profile_seconds, tmp, run)
        if found is None:
            self.result.profile_note = "py-spy did not produce a profile"
            return
        self.result.profiles.append(found)
        top = ", ".join(f"{name} {share:.0%}" for name, share in found.by_layer[:3])
        _say(f"profile of {workload_name}: {top}")


# ---------------------------------------------------------------- main


async def run_all(plan: Plan, databases: list[str], output: Path | None, profiling: bool) -> int:
    started = datetime.now(UTC)
    machine = report.Machine.collect(background_load())
    if machine.background_cores > common.QUIET_CPUS:
        print(
            f"warning: other processes keep {machine.background_cores:.2f} CPUs busy",
            file=sys.stderr,
        )
    why_not = "" if profiling else "profiling turned off (--no-profile)"
    if profiling:
        why_not = profile.available()
    results: list[AttainResult] = []
    with tempfile.TemporaryDirectory(prefix="attain-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            echo_result = await bench_echo(plan, tmp)
            for kind in databases:
                print(f"Attain on {kind}", file=sys.stderr, flush=True)
                result = AttainResult(database=kind)
                results.append(result)
                database = sqlite_database(tmp) if kind == "SQLite" else postgres_database()
                try:
                    async with database as db:
                        result.database = db.version
                        await AttainBench(plan, result, echo_result, db).run(tmp, why_not)
                        result.autovacuum, result.analyzed = db.autovacuum, db.analyzed
                except (OSError, asyncpg.PostgresError) as exc:
                    if kind == "SQLite" or result.unary:
                        raise
                    result.skipped = f"PostgreSQL does not answer at {common.PG_ADMIN_URL}: {exc}"
                    print(f"  skipped: {result.skipped}", file=sys.stderr)
        finally:
            procs.stop_all()
    elapsed = (datetime.now(UTC) - started).total_seconds()
    commit_after, code_after = report.code_version()
    machine = replace(
        machine, elapsed_seconds=elapsed, commit_after=commit_after, code_after=code_after
    )
    if code_after != machine.code:
        print(f"warning: the code changed during the run: now {commit_after}", file=sys.stderr)
    section = report.markdown(plan, machine, echo_result, results, started)
    print()
    print(report.console(plan, echo_result, results))
    if output is not None:
        common.write_section(output, report.HEADING, section)
        print(f"\nwrote the '{report.HEADING}' section of {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Attain ingest and GetProgress against a bare gRPC echo (medians of 3 runs).",
    )
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test only")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--only", choices=["sqlite", "postgres"], help="run one database instead of both"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"markdown file to update (default {common.DOCS.relative_to(common.REPO)}; "
        "with --quick: none unless given)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; write no file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    databases = {"sqlite": ["SQLite"], "postgres": ["PostgreSQL"], None: ["SQLite", "PostgreSQL"]}[
        args.only
    ]
    output: Path | None = args.output or (None if args.quick else common.DOCS)
    if args.no_write:
        output = None

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with asyncio.timeout(WATCHDOG_SECONDS):
            return await run_all(plan, databases, output, not args.no_profile)

    try:
        return asyncio.run(guarded())
    except TimeoutError:
        print(f"the benchmark took over {WATCHDOG_SECONDS} s and was stopped", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped and databases dropped", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(Exception):
            procs.stop_all()
