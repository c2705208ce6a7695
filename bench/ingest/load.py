"""Load generators and statistics: unary calls at N in flight, one client stream.

Requests arrive serialized and replies stay bytes: the clock covers the calls only, replies
are checked after it stops, and the garbage collector is paused while it runs (for Attain
and the echo baseline alike).
"""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from .cpu import Meter, Usage

Metadata = tuple[tuple[str, str], ...]
CALL_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Run:
    """One measured run: ``items`` transactions (or calls) in ``seconds``."""

    items: int
    seconds: float
    messages: int = 0
    # Seconds per call (unary runs only).
    latencies: tuple[float, ...] = ()
    usage: Usage = field(default_factory=Usage)

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    @property
    def message_rate(self) -> float:
        return self.messages / self.seconds

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the call latencies, in milliseconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1] * 1000


def _median(values: Iterator[float]) -> float:
    items = list(values)
    return statistics.median(items) if items else math.nan


@dataclass(frozen=True)
class Figure:
    """The medians of several runs of one measurement."""

    runs: tuple[Run, ...] = ()

    @property
    def rate(self) -> float:
        return _median(r.rate for r in self.runs)

    @property
    def message_rate(self) -> float:
        return _median(r.message_rate for r in self.runs)

    @property
    def p50(self) -> float:
        return _median(r.percentile_ms(50) for r in self.runs)

    @property
    def p99(self) -> float:
        return _median(r.percentile_ms(99) for r in self.runs)

    @property
    def items_per_run(self) -> tuple[int, ...]:
        return tuple(r.items for r in self.runs)

    @property
    def server_cores(self) -> float:
        """Server CPU seconds per second: 1.0 is one core kept busy."""
        return _median(r.usage.server / r.seconds for r in self.runs)

    @property
    def client_cores(self) -> float:
        return _median(r.usage.client / r.seconds for r in self.runs)

    @property
    def database_cores(self) -> float:
        return _median(r.usage.database / r.seconds for r in self.runs)

    @property
    def server_ms_per_item(self) -> float:
        return _median(r.usage.server * 1000 / r.items for r in self.runs if r.items)


@contextmanager
def _quiet_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def unary(
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes],
    requests: Sequence[bytes],
    metadata: Metadata,
    *,
    concurrency: int,
    seconds: float,
    meter: Meter | None = None,
) -> tuple[Run, list[bytes]]:
    """Sends ``requests`` in order with ``concurrency`` calls in flight on one channel.

    Stops when the requests run out or ``seconds`` have passed, whichever comes first.
    """
    latencies: list[float] = []
    replies: list[bytes] = []
    position = 0

    async def caller(deadline: float) -> None:
        nonlocal position
        while position < len(requests) and time.perf_counter() < deadline:
            request = requests[position]
            position += 1
            began = time.perf_counter()
            reply = await call(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            latencies.append(time.perf_counter() - began)
            replies.append(reply)

    with _quiet_gc():
        if meter:
            meter.start()
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(caller(deadline) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        usage = meter.stop() if meter else Usage()
    return Run(len(latencies), elapsed, len(latencies), tuple(latencies), usage), replies


async def stream(
    call: grpc.aio.StreamUnaryMultiCallable[bytes, bytes],
    messages: Sequence[bytes],
    metadata: Metadata,
    *,
    items_per_message: int,
    seconds: float,
    meter: Meter | None = None,
) -> tuple[Run, bytes]:
    """Sends messages on one client stream until they run out or ``seconds`` have passed.

    The clock stops when the server's summary arrives, so messages still queued when the
    time is up are counted with the time they took.
    """
    sent = 0

    async def feed(deadline: float) -> AsyncIterator[bytes]:
        nonlocal sent
        for message in messages:
            if time.perf_counter() >= deadline:
                return
            sent += 1
            yield message

    with _quiet_gc():
        if meter:
            meter.start()
        began = time.perf_counter()
        reply = await call(
            feed(began + seconds), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS * 5
        )
        elapsed = time.perf_counter() - began
        usage = meter.stop() if meter else Usage()
    return Run(sent * items_per_message, elapsed, sent, (), usage), reply
