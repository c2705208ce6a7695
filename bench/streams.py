"""A thousand live streams whose clients do not read, against one `attain-server serve`
(SQLite): the server's resident memory and GetBrand's median latency before, while they are
open, and after they are gone; once with the default stream caps and once with the caps
raised past a thousand, so that every stream is admitted and has to be let go.

Every client is a real gRPC channel whose receive window is about a kilobyte (no BDP
probing), so the server's writes stop after a few messages, as they do for an app that
stalled. The brand has one award per member (2,000 by default), which every WatchAwards
stream starts by sending.

Run from the repository root: ``.venv/bin/python -m bench.streams`` (``--help``). It prints a
table and rewrites the "## Live streams (bench/streams)" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import progress_pb2 as ppb
from attain.v1 import progress_pb2_grpc, rewards_pb2_grpc, targets_pb2_grpc
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application.brands import create_brand
from attain_server.store.engine import Database

from . import common
from .ingest import procs

HEADING = "## Live streams (bench/streams)"
SLOW_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]


@dataclass
class Figures:
    label: str
    admitted: int
    refused: int
    rss_mb: tuple[int, int, int]  # before, with the streams open, after they are gone
    p50_ms: tuple[float, float, float]


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


async def peak_rss(pid: int, seconds: float) -> int:
    """The highest resident size seen over ``seconds``."""
    peak, deadline = rss_mb(pid), time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.2)
    return peak


def D(value: str) -> typ.Decimal:
    return typ.Decimal(value=value)


async def get_brand_p50(
    stub: targets_pb2_grpc.TargetServiceAsyncStub, md: Sequence[tuple[str, str]]
) -> float:
    times = []
    for _ in range(200):
        start = time.perf_counter()
        await stub.GetBrand(tpb.GetBrandRequest(), metadata=md)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


async def load_awards(
    channel: grpc.aio.Channel, md: Sequence[tuple[str, str]], members: int
) -> None:
    """A target whose every sale pays, and one sale per member: one award each."""
    targets = targets_pb2_grpc.TargetServiceStub(channel)
    now = datetime.now(UTC)
    target = tpb.Target(
        code="STREAMS",
        criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D("10"))],
        period=tpb.Period(
            kind=typ.PERIOD_KIND_MONTHLY, start_date=now.date().replace(day=1).isoformat()
        ),
        rules=[tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=5)))],
    )
    await targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=md)
    ids = [f"M{i:05}" for i in range(members)]
    gate = asyncio.Semaphore(32)

    async def upsert(member: str) -> None:
        async with gate:
            request = tpb.UpsertMemberRequest(member=tpb.Member(external_id=member))
            await targets.UpsertMember(request, metadata=md)

    await asyncio.gather(*(upsert(m) for m in ids))
    when = Timestamp()
    when.FromDatetime(now)

    async def batches() -> AsyncIterator[ppb.RecordTransactionsRequest]:
        for i in range(0, len(ids), 500):
            yield ppb.RecordTransactionsRequest(
                transactions=[
                    ppb.Transaction(
                        id=f"T-{m}",
                        member_id=m,
                        occurred_time=when,
                        store_id="S",
                        type=ppb.TRANSACTION_TYPE_SALE,
                        lines=[ppb.TransactionLine(sku="A", quantity=D("1"), amount=D("10"))],
                    )
                    for m in ids[i : i + 500]
                ]
            )

    summary = await progress_pb2_grpc.ProgressServiceStub(channel).RecordTransactions(
        batches(), metadata=md
    )
    assert summary.accepted == members, summary


async def hold(address: str, key: str, streams: int) -> None:
    """The client side (a process of its own): opens the streams, never reads them, says
    how many the server refused, then waits to be killed."""
    channels = [grpc.aio.insecure_channel(address, options=SLOW_WINDOW) for _ in range(10)]
    md = (("authorization", f"Bearer {key}"),)
    calls = [
        rewards_pb2_grpc.RewardServiceStub(channels[i % 10]).WatchAwards(
            rpb.WatchAwardsRequest(), metadata=md
        )
        for i in range(streams)
    ]
    await asyncio.sleep(3)
    refused = sum(1 for c in calls if c.done())  # a refusal ends the call at once
    print(f"refused {refused}", flush=True)
    await asyncio.sleep(3600)


async def new_brand(url: str) -> str:
    """Brand ACME in a fresh database; returns its first admin key."""
    db = Database(url)
    try:
        await db.migrate()
        _, _, secret = await create_brand(
            db=db, code="ACME", time_zone="UTC", now=datetime.now(UTC)
        )
        return secret
    finally:
        await db.dispose()


async def scenario(
    label: str, env: dict[str, str], streams: int, members: int, hold_s: float
) -> Figures:
    folder = common.temp_folder("bench-streams")
    url = f"sqlite+aiosqlite:///{folder / 'attain.db'}"
    proc: procs.ServerProcess | None = None
    try:
        key = await new_brand(url)
        argv = [*procs.attain_command(), "serve", "--listen", "127.0.0.1:0", "--no-worker"]
        proc = procs.spawn("attain-server", [*argv, "--database-url", url], folder / "log", env)
        await procs.wait_for_port(proc)
        await procs.wait_serving(proc)
        md = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(proc.address) as channel:
            targets = targets_pb2_grpc.TargetServiceStub(channel)
            await load_awards(channel, md, members)
            await asyncio.sleep(1)
            before = (rss_mb(proc.pid), await get_brand_p50(targets, md))
            holder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.streams",
                "--hold-streams",
                proc.address,
                key,
                str(streams),
                stdout=asyncio.subprocess.PIPE,
            )
            assert holder.stdout is not None
            refused = int((await holder.stdout.readline()).split()[1])
            deadline = time.monotonic() + hold_s
            peak = await peak_rss(proc.pid, 2.0)
            during = await get_brand_p50(targets, md)  # while they are still open
            peak = max(peak, await peak_rss(proc.pid, deadline - time.monotonic()))
            holder.kill()
            await holder.wait()
            await asyncio.sleep(5)  # the server notices, and trims once the burst has ended
            after = (rss_mb(proc.pid), await get_brand_p50(targets, md))
        return Figures(
            label,
            streams - refused,
            refused,
            (before[0], peak, after[0]),
            (before[1], during, after[1]),
        )
    finally:
        if proc is not None:
            proc.stop()
        common.remove_folder(folder)


def markdown(figs: Sequence[Figures], started: datetime, streams: int, members: int) -> str:
    rows = [
        [
            "caps",
            "admitted / refused",
            "RSS before → with → after (MB)",
            "GetBrand p50 before → with → after (ms)",
        ]
    ]
    for f in figs:
        rows.append(
            [
                f.label,
                f"{f.admitted:,} / {f.refused:,}",
                " → ".join(str(v) for v in f.rss_mb),
                " → ".join(f"{v:g}" for v in f.p50_ms),
            ]
        )
    lines = [
        HEADING,
        "",
        common.machine_line(started),
        "",
        f"{streams:,} WatchAwards streams from one key whose clients never read (a 1 KiB "
        f"receive window), on a brand with {members:,} awards; the clients are killed after "
        'the hold, and "after" is 5 s later.',
        "",
        *common.table(rows),
    ]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> list[Figures]:
    env = {"ATTAIN_LOG_LEVEL": "WARNING", "ATTAIN_LOG_FORMAT": "json"}
    if args.write_timeout:
        env["ATTAIN_STREAM_WRITE_TIMEOUT_SECONDS"] = str(args.write_timeout)
    raised = {
        **env,
        "ATTAIN_STREAM_LIMIT_PER_KEY": str(args.streams),
        "ATTAIN_STREAM_LIMIT_PER_BRAND": str(args.streams),
    }
    return [
        await scenario(
            "default (16 per key, 256 per brand)", env, args.streams, args.members, args.hold
        ),
        await scenario(
            f"raised to {args.streams:,}", raised, args.streams, args.members, args.hold
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds the streams stay open")
    parser.add_argument(
        "--write-timeout", type=float, default=0.0, help="the server's, if not its default"
    )
    parser.add_argument("--no-docs", action="store_true", help="print only")
    # Internal: the client process.
    parser.add_argument("--hold-streams", nargs=3, metavar=("ADDRESS", "KEY", "N"), dest="holder")
    args = parser.parse_args(argv)
    if args.holder:
        address, key, n = args.holder
        asyncio.run(hold(address, key, int(n)))
        return 0
    common.arm(600)
    started = datetime.now(UTC)
    figs = asyncio.run(run(args))
    text = markdown(figs, started, args.streams, args.members)
    print(text)
    if not args.no_docs:
        common.write_section(common.DOCS, HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
