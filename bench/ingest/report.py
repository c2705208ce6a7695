"""The report: tables for the terminal and the "## Ingest (bench/ingest)" markdown section."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import grpc
import sqlalchemy

from .. import common
from .load import Figure
from .profile import Profile

if TYPE_CHECKING:
    from .run import AttainResult, EchoResult, Plan

HEADING = "## Ingest (bench/ingest)"

# The targets of the issue.
UNARY_SHARE = 0.5
STREAM_TPS = 20_000
PROGRESS_P99_MS = 2.0


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gb: float
    python: str
    kernel: str
    grpcio: str
    sqlalchemy: str
    load_average: float
    background_cores: float
    # The code measured (commit, with a note when CODE_DIRS differ from it), its
    # fingerprint at the start, and the same two at the end of the run.
    commit: str = ""
    code: str = ""
    commit_after: str = ""
    code_after: str = ""
    elapsed_seconds: float = 0.0

    @classmethod
    def collect(cls, background_cores: float) -> Machine:
        commit, code = code_version()
        return cls(
            cpus=len(os.sched_getaffinity(0)),
            cpu_model=common.cpu_model(),
            memory_gb=common.memory_gb(),
            python=platform.python_version(),
            kernel=platform.release(),
            grpcio=grpc.__version__,
            sqlalchemy=sqlalchemy.__version__,
            load_average=os.getloadavg()[0],
            background_cores=background_cores,
            commit=commit,
            code=code,
        )


# What the measured processes run: a change elsewhere (docs, tests) changes no figure.
CODE_DIRS = ("server", "worker", "clients", "protos")


def code_version() -> tuple[str, str]:
    """(label, fingerprint) of the code under test, e.g. ("abc1234", "<tree hashes>").

    The fingerprint covers CODE_DIRS only, committed or not, so that a commit of docs
    during the run does not count as a change of the code measured.
    """

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=common.REPO,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    trees = git("rev-parse", *(f"HEAD:{d}" for d in CODE_DIRS))
    local = git("diff", "HEAD", "--", *CODE_DIRS) + git(
        "ls-files", "--others", "--exclude-standard", "--", *CODE_DIRS
    )
    label = f"{commit} with local changes" if local else commit
    fingerprint = hashlib.sha256(f"{trees}\n{local}".encode()).hexdigest()
    return label, fingerprint


# ---------------------------------------------------------------- numbers


def rate(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value:,.0f}"


def ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def latency(figure: Figure) -> str:
    return f"{ms(figure.p50)} / {ms(figure.p99)}"


def share(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    for limit, digits in ((0.001, 3), (0.01, 2), (0.1, 1)):
        if value < limit:
            return f"{value:.{digits}%}"
    return f"{value:.0%}"


def cpu_time(seconds_per_item: float) -> str:
    """CPU time per item with its unit: ms down to 0.1 ms, then µs."""
    if math.isnan(seconds_per_item):
        return "n/a"
    millis = seconds_per_item * 1000
    return f"{ms(millis)} ms" if millis >= 0.1 else f"{millis * 1000:.2f} µs"


def missed(result: AttainResult, echo: EchoResult) -> set[str]:
    """The targets this database missed: "unary", "stream", "progress".

    A missed unary target also adds "unary@<concurrency>" for each concurrency that missed.
    """
    out = {f"unary@{c}" for c in result.unary if not _unary_met(result, echo, c)}
    if out:
        out.add("unary")
    if result.database.startswith("SQLite") and result.stream.rate < STREAM_TPS:
        out.add("stream")
    if not result.progress.p99 < PROGRESS_P99_MS:
        out.add("progress")
    return out


def paired_share(result: AttainResult, concurrency: int) -> float:
    """The median of the runs' rates over an echo run right after each (nan without)."""
    ratios = result.paired.get(concurrency, ())
    return statistics.median(ratios) if ratios else math.nan


def _unary_met(result: AttainResult, echo: EchoResult, concurrency: int) -> bool:
    """Met against the echo baseline of the run's start and, where measured, against the
    echo runs paired with each unary run: both must reach the share."""
    base = result.unary[concurrency].rate >= UNARY_SHARE * echo.unary[concurrency].rate
    paired = paired_share(result, concurrency)
    return base and (math.isnan(paired) or paired >= UNARY_SHARE)


def _paired_text(result: AttainResult, concurrency: int) -> str:
    ratios = result.paired.get(concurrency, ())
    if not ratios:
        return ""
    median = share(paired_share(result, concurrency))
    return f"; {median} of an echo run right after each ({share(min(ratios))}-{share(max(ratios))})"


def _verdict(ok: bool, figure: str) -> str:
    return f"{'met' if ok else '**missed**'}: {figure}"


# ---------------------------------------------------------------- tables


def figures_table(plan: Plan, echo: EchoResult, results: list[AttainResult]) -> list[str]:
    head = ["measurement", "echo baseline"]
    for r in results:
        head += [f"Attain {r.database}", f"{r.database.split()[0]} / echo"]
    rows = [head]
    done = [r for r in results if not r.skipped]

    def add(label: str, base: str, cells: list[tuple[str, str]]) -> None:
        row = [label, base]
        for r in results:
            if r.skipped:
                row += ["skipped", ""]
            else:
                row += list(cells[done.index(r)])
        rows.append(row)

    for c in plan.concurrencies:
        e = echo.unary[c]
        add(
            f"RecordTransaction, {c} in flight: transactions/s",
            f"{rate(e.rate)} calls/s",
            [(rate(r.unary[c].rate), share(r.unary[c].rate / e.rate)) for r in done],
        )
        add(
            f"RecordTransaction, {c} in flight: p50 / p99 ms",
            latency(e),
            [(latency(r.unary[c]), "") for r in done],
        )
    e = echo.stream
    add(
        f"RecordTransactions stream, {plan.per_message:,} per message: transactions/s",
        f"{rate(e.message_rate)} messages/s = {rate(e.rate)} items/s",
        [(rate(r.stream.rate), share(r.stream.rate / e.rate)) for r in done],
    )
    e1 = echo.unary[min(plan.concurrencies)]
    add(
        "GetProgress, 1 in flight: p50 / p99 ms",
        f"{latency(e1)} (unary echo)",
        [(latency(r.progress), "") for r in done],
    )
    return common.table(rows)


def targets_table(plan: Plan, echo: EchoResult, results: list[AttainResult]) -> list[str]:
    rows = [["target (from the issue)"] + [r.database for r in results]]
    for c in plan.concurrencies:
        row = [f"unary ingest >= 50% of echo QPS at {c} in flight"]
        for r in results:
            if r.skipped:
                row.append("skipped")
                continue
            mine, base = r.unary[c].rate, echo.unary[c].rate
            row.append(
                _verdict(
                    _unary_met(r, echo, c),
                    f"{share(mine / base)} ({rate(mine)} tx/s){_paired_text(r, c)}",
                )
            )
        rows.append(row)
    row = [f"stream ingest >= {STREAM_TPS:,} transactions/s on SQLite"]
    for r in results:
        if r.skipped:
            row.append("skipped")
        elif r.database.startswith("SQLite"):
            row.append(_verdict(r.stream.rate >= STREAM_TPS, f"{rate(r.stream.rate)} tx/s"))
        else:
            row.append(f"(no target: {rate(r.stream.rate)} tx/s)")
    rows.append(row)
    row = [f"GetProgress p99 < {PROGRESS_P99_MS:g} ms"]
    for r in results:
        if r.skipped:
            row.append("skipped")
        else:
            p99 = r.progress.p99
            row.append(_verdict(p99 < PROGRESS_P99_MS, f"p99 {ms(p99)} ms"))
    rows.append(row)
    return common.table(rows)


def cpu_table(plan: Plan, echo: EchoResult, results: list[AttainResult]) -> list[str]:
    rows = [["measurement", "server", "server CPU per transaction", "server cores", "client cores"]]

    def add(label: str, who: str, f: Figure) -> None:
        cores = f"{f.server_cores:.2f}"
        if who.startswith("PostgreSQL"):
            cores += f" (+ postgres {f.database_cores:.2f})"
        cpu = cpu_time(f.server_ms_per_item / 1000)
        rows.append([label, who, cpu, cores, f"{f.client_cores:.2f}"])

    for c in plan.concurrencies:
        add(f"unary, {c} in flight", "echo", echo.unary[c])
        for r in results:
            if not r.skipped:
                add(f"RecordTransaction, {c} in flight", r.database, r.unary[c])
    add("stream", "echo (per item)", echo.stream)
    for r in results:
        if not r.skipped:
            add("RecordTransactions stream", r.database, r.stream)
    for r in results:
        if not r.skipped:
            add("GetProgress, 1 in flight", r.database, r.progress)
    return common.table(rows)


# ---------------------------------------------------------------- what bounds it


def _profile_sentences(p: Profile) -> list[str]:
    threads = ", ".join(f"{name} {cores:.0%}" for name, cores in p.threads[:3])
    layers = ", ".join(f"{name} {share(s)}" for name, s in p.by_layer[:6])
    top = "; ".join(f"`{frame}` {share(s)}" for frame, s in p.top_self[:6])
    attain = "; ".join(f"`{frame}` {share(s)}" for frame, s in p.top_attain[:5])
    out = [
        f"While a {p.seconds:.0f}-second py-spy profile of the server ran ({p.workload}), "
        f"its threads used (share of one core): {threads}.",
        f"Of the {p.samples:,} samples of the thread holding the GIL, by layer: {layers}.",
        f"Top frames (self time): {top}.",
    ]
    if attain:
        out.append(f"Attain functions (inclusive, a lower bound): {attain}.")
    main = dict(p.threads).get("event loop (main thread)", 0.0)
    if main >= 0.85:
        out.append(
            "The event-loop thread is saturated: throughput is what one core of Python "
            "work per process allows."
        )
    db = p.layer_share("SQLAlchemy", "aiosqlite", "asyncpg")
    if db >= 0.35:
        out.append(
            f"{share(db)} of the samples are in SQLAlchemy and the driver, although the hot "
            "statements already run as plans compiled once, on the driver, in units of work "
            "without an ORM session (decision 0010): what is left is connection checkout, "
            "commit, and the bind and result processing of each value."
        )
    own = p.layer_share("Attain")
    if own >= 0.35:
        out.append(
            f"{share(own)} of the samples are Attain's own Python code, per transaction "
            "(proto parsing, validation, tallies, JSON of lines and tallies)."
        )
    return out


def _explain(r: AttainResult, p: Profile | None) -> list[str]:
    return _profile_sentences(p) if p else [r.profile_note or "No profile."]


def _profile_for(r: AttainResult, prefix: str) -> Profile | None:
    return next((p for p in r.profiles if p.workload.startswith(prefix)), None)


def bounds(plan: Plan, echo: EchoResult, results: list[AttainResult]) -> list[str]:
    out: list[str] = []
    for r in results:
        if r.skipped:
            continue
        what = missed(r, echo)
        if "unary" in what:
            hi, lo = max(plan.concurrencies), min(plan.concurrencies)
            f, f1 = r.unary[hi], r.unary[lo]
            text = [
                f"**Unary RecordTransaction on {r.database}**: {rate(f.rate)} tx/s at {hi} in "
                f"flight ({share(f.rate / echo.unary[hi].rate)} of echo), {rate(f1.rate)} tx/s "
                f"at {lo} ({share(f1.rate / echo.unary[lo].rate)}).",
                f"The server spends {ms(f.server_ms_per_item)} ms of CPU per transaction at "
                f"{hi} in flight and {ms(f1.server_ms_per_item)} ms at {lo}; the echo server "
                f"{ms(echo.unary[hi].server_ms_per_item)} ms per call.",
            ]
            if f1.server_ms_per_item >= 0.6 * f1.p50:
                text.append(
                    f"At {lo} in flight that CPU time is most of the {ms(f1.p50)} ms p50: "
                    "the call is bound by server CPU, not by waiting."
                )
            if r.database.startswith("PostgreSQL"):
                text.append(f"PostgreSQL used {f.database_cores:.2f} cores at {hi} in flight.")
            profiled = [
                _profile_for(r, f"RecordTransaction, {c} in flight") for c in plan.concurrencies
            ]
            found = [p for p in profiled if p is not None]
            for p in found:
                text += _profile_sentences(p)
            if not found:
                text.append(r.profile_note or "No profile.")
            out += ["- " + " ".join(text), ""]
        if "stream" in what:
            f = r.stream
            per_core = 1000 / f.server_ms_per_item if f.server_ms_per_item else math.nan
            text = [
                f"**RecordTransactions stream on {r.database}**: {rate(f.rate)} tx/s "
                f"(target {STREAM_TPS:,}).",
                f"The server spends {ms(f.server_ms_per_item)} ms of CPU per transaction "
                f"({f.server_cores:.2f} cores), at most ~{rate(per_core)} tx/s per core; "
                f"{STREAM_TPS:,} tx/s on one event loop needs under "
                f"{1000 / STREAM_TPS:.2f} ms per transaction.",
            ]
            stream_profile = _profile_for(r, "RecordTransactions")
            text += _explain(r, stream_profile)
            out += ["- " + " ".join(text), ""]
        if "progress" in what:
            f = r.progress
            e1 = echo.unary[min(plan.concurrencies)]
            text = [
                f"**GetProgress on {r.database}**: p50 {ms(f.p50)} ms, p99 {ms(f.p99)} ms "
                f"(target p99 < {PROGRESS_P99_MS:g} ms; echo {latency(e1)} ms).",
                f"The server spends {ms(f.server_ms_per_item)} ms of CPU per call.",
            ]
            if e1.p99 >= PROGRESS_P99_MS:
                # A bare echo that misses the mark says the hour's latency, not the server's.
                text.append(
                    f"The bare echo's own p99 was {ms(e1.p99)} ms in this run, above the "
                    "target: at that hour even a call that does no work missed it."
                )
            text += _explain(r, _profile_for(r, "GetProgress"))
            out += ["- " + " ".join(text), ""]
    return out


# ---------------------------------------------------------------- the section


def markdown(
    plan: Plan,
    machine: Machine,
    echo: EchoResult,
    results: list[AttainResult],
    started: datetime,
) -> str:
    done = [r for r in results if not r.skipped]
    lines = [
        HEADING,
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine.cpus} CPUs (nproc; "
        f"{machine.cpu_model}, {machine.memory_gb:.0f} GB), Linux {machine.kernel}, "
        f"Python {machine.python}, grpcio {machine.grpcio}, SQLAlchemy {machine.sqlalchemy}, "
        + ", ".join(r.database for r in done)
        + f"; Attain at commit {machine.commit}. Before the run the machine was "
        f"{machine.background_cores:.2f} CPUs busy "
        f"(1-minute load average {machine.load_average:.2f}); the run took "
        f"{machine.elapsed_seconds:.0f} s. Every figure is the **median of "
        f"{plan.runs} runs**, and the echo baseline was **measured in the same run**, on the "
        "same machine, with the same client. Reproduce with `scripts/bench`.",
        "",
        *(
            [
                f"**Warning: other processes kept {machine.background_cores:.2f} CPUs busy "
                "before the run; expect lower figures than on a quiet machine.**",
                "",
            ]
            if machine.background_cores > common.QUIET_CPUS
            else []
        ),
        *(
            [
                f"**Warning: the code changed during the run ({machine.commit} → "
                f"{machine.commit_after}); measure again.**",
                "",
            ]
            if machine.code_after and machine.code_after != machine.code
            else []
        ),
        "### Figures",
        "",
        *figures_table(plan, echo, results),
        "",
        "### Targets",
        "",
        *targets_table(plan, echo, results),
        "",
    ]
    for r in results:
        if r.skipped:
            lines += [f"{r.database}: {r.skipped}", ""]
    why = bounds(plan, echo, results)
    if why:
        lines += ["### What bounds it", "", *why]
    lines += [
        "### CPU",
        "",
        "CPU time from /proc during the measured runs (medians): the server process (all its "
        "threads), this client, and PostgreSQL (the backends of the benchmark's database and "
        "the shared writers).",
        "",
        *cpu_table(plan, echo, results),
        "",
        "### How it was measured",
        "",
        *method(plan, echo, results),
        "",
    ]
    return "\n".join(lines)


def method(plan: Plan, echo: EchoResult, results: list[AttainResult]) -> list[str]:
    done = [r for r in results if not r.skipped]
    found = sorted({r.port_found_by for r in done if r.port_found_by})
    warnings = ", ".join(f"{r.database} {len(r.warnings)}" for r in done)
    pools = ", ".join(f"{r.database} {r.progress_pool:,}" for r in done)
    loads = ", ".join(f"{r.database} {r.members_seconds:.1f} s" for r in done)
    opens = ", ".join(f"{r.database} {r.cycle_open_seconds:.1f} s" for r in done)
    stream_runs = "; ".join(
        f"{r.database} {'/'.join(f'{n:,}' for n in r.stream.items_per_run)}" for r in done
    )
    progress_runs = "; ".join(
        f"{r.database} {'/'.join(f'{n:,}' for n in r.progress.items_per_run)}" for r in done
    )
    return [
        "- One client process (this benchmark: one asyncio loop, one grpc.aio channel per "
        "server) and each server in its own subprocess on 127.0.0.1. Attain runs as "
        "`attain-server serve --listen 127.0.0.1:0 --database-url ...` with "
        "`ATTAIN_LOG_LEVEL=WARNING` (no per-call `rpc` lines) and `ATTAIN_LOG_FORMAT=json`; "
        "the echo server as `python -m bench.ingest.echo` (grpc.aio, a generic unary and a "
        "generic client-streaming handler, bytes in and out, no protobuf on the server). "
        f"Attain's port was found from {' and '.join(found) or 'n/a'}: at WARNING the server "
        "does not log its INFO `listening` line.",
        f"- Unary payload: a serialized `RecordTransactionRequest` of {echo.payload_bytes} bytes "
        "(a SALE with one line, fixed-width ids), sent as bytes to both servers with "
        "authorization metadata of the same size; the echo server returns the same bytes. "
        f"Stream messages: {plan.per_message:,} such transactions, {echo.message_bytes:,} bytes "
        "per message, to both.",
        f"- Setup per database: brand BENCH (zone UTC) with `attain-server brands create`; "
        f"{plan.members:,} members inserted into `member` with SQLAlchemy Core executemany "
        f"({loads}); one MONTHLY `KPI_TRANSACTION_AMOUNT` target from the 1st of this month "
        "and an ingest key through gRPC (on a setup server started with `--no-worker`). The "
        "measured server runs as by default, with its worker; the benchmark waits until the "
        "worker's cycle clock has opened the month (a progress row at zero for every member: "
        f"{opens}) and measures after that. Ingest uses the ingest key, GetProgress the "
        "admin key.",
        f"- Unary runs: a warm-up of up to {plan.warmup_calls} calls, then {plan.runs} runs "
        f"of {plan.unary_seconds:g} s per concurrency, each transaction with a new id for one "
        f"of {plan.unary_members:,} members, occurred now. Every reply is checked "
        "(ACCEPTED with one progress row). Right after each run, a second echo server "
        "(started beside the database's Attain server and idle otherwise) takes a run of the "
        "same length at the same concurrency: the machine's speed drifts within minutes, and "
        "the echo baseline above was measured before this database's setup. A unary target "
        "counts as met only when both the share of that baseline and the median of the "
        "per-run shares of the paired echo runs reach it.",
        f"- Stream runs: a warm-up of 2 messages sizes the runs: each run sends as many "
        f"messages as take about {plan.stream_seconds:g} s at the warm-up's rate (at most "
        f"{plan.messages_per_run}), and its rate counts every transaction until the summary "
        "arrives. Each sale is the first of the month for its member: it updates the row "
        f"the clock opened at zero. Summaries are checked (all accepted). Transactions per "
        f"run: {stream_runs}.",
        f"- GetProgress: sequential, up to {plan.progress_calls:,} calls per run (or "
        f"{plan.progress_seconds:g} s), current cycle, for random members among those the "
        f"stream gave a sale ({pools} of {plan.members:,} members). Calls per run: "
        f"{progress_runs}. Its baseline is the unary echo at 1 in flight (whose payload is "
        "the larger one).",
        "- Latency is per call at the client; p50/p99 are nearest-rank percentiles. Each "
        "figure (throughput, p50, p99) is the median of the runs' figures. The garbage "
        "collector of the client is paused during timed runs.",
        f"- Server warnings or errors logged during the run: {warnings}.",
        *analyze_note(done),
    ]


def analyze_note(done: list[AttainResult]) -> list[str]:
    pg = [r for r in done if r.database.startswith("PostgreSQL")]
    if not pg:
        return []
    r = pg[0]
    return [
        f"- PostgreSQL: this cluster runs with `autovacuum = {r.autovacuum}`. The benchmark "
        f"runs `ANALYZE` on its database before each phase and before each stream run "
        f"({r.analyzed} times, never during a timed run), as autovacuum would keep the "
        "statistics fresh. Without statistics, the ingest lookups `txn.id IN (...)` and "
        "`progress.member_id IN (...)` are planned as a scan of the whole brand (and cycle) "
        "with a filter, and stream ingest slows down as the tables grow (measured while "
        "writing this benchmark: about 1,200 tx/s falling to 300 tx/s over 32,000 rows)."
    ]


def console(plan: Plan, echo: EchoResult, results: list[AttainResult]) -> str:
    return "\n".join(
        [
            *figures_table(plan, echo, results),
            "",
            *targets_table(plan, echo, results),
            "",
            *cpu_table(plan, echo, results),
        ]
    )
