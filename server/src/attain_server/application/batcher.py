"""Group commit for single transactions: concurrent RecordTransaction calls share one commit.

Per brand, calls queue up while a batch is being written and go together into the next one.
With one caller at a time a batch holds one transaction, so nothing waits for company.

On SQLite a write runs on the loop's thread without suspending (decision 0009), so calls
cannot reach the queue while it runs: gRPC accepts them only when the loop is free. So
the batcher lingers a fraction of a millisecond before a write when that pays: every
PROBE_EVERY-th batch tries it, and while lingering gathers company it keeps doing so
("busy"); once a linger gathers nobody, batches go out at once again. One caller at a time
pays one short linger in PROBE_EVERY calls: asyncio's sleep of 0.3 ms is a 1 ms epoll
timeout, so a probe costs a lone caller about a millisecond, and probes are kept rare.

Each transaction stays its own unit: when a shared batch fails as a whole (a fault in the
store, contention that outlasted its retries), its transactions are recorded again one by
one, so only the one at fault fails, with its own error. The common case pays nothing for
this; a failed batch costs one unit of work per transaction.
"""

from __future__ import annotations

import asyncio

import structlog

from attain_server.domain.transactions import Transaction

from .ingest import Outcome, Recorder

log = structlog.get_logger("attain.batcher")

Waiter = tuple[Transaction, asyncio.Future[Outcome]]

MAX_BATCH = 256
PROBE_EVERY = 64
LINGER_SECONDS = 0.0003
LINGER_TURNS = 8
IDLE_LINGERS = 4


class Batcher:
    def __init__(self, recorder: Recorder, max_batch: int = MAX_BATCH) -> None:
        self._recorder = recorder
        self._max = max_batch
        self._queues: dict[str, list[Waiter]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._busy: dict[str, bool] = {}
        self._since_probe: dict[str, int] = {}
        self._idle_lingers: dict[str, int] = {}

    async def record(self, brand: str, transaction: Transaction) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(brand, []).append((transaction, future))
        if brand not in self._drains:
            self._drains[brand] = asyncio.create_task(self._drain(brand))
        return await future

    async def _gather(self, brand: str, queue: list[Waiter]) -> None:
        """Waits for company when the brand is busy (or to find out whether it is)."""
        calm = self._since_probe.get(brand, 0)
        if not self._busy.get(brand) and calm < PROBE_EVERY:
            self._since_probe[brand] = calm + 1
            await asyncio.sleep(0)  # calls already scheduled on the loop still join
            return
        self._since_probe[brand] = 0
        for _ in range(LINGER_TURNS):
            if len(queue) >= self._max:
                break
            before = len(queue)
            await asyncio.sleep(LINGER_SECONDS)
            if len(queue) == before:
                break
        if len(queue) > 1:
            self._busy[brand], self._idle_lingers[brand] = True, 0
        else:  # leave busy mode after a few lingers in a row that gathered nobody
            idle = self._idle_lingers.get(brand, 0) + 1
            self._idle_lingers[brand] = idle
            self._busy[brand] = self._busy.get(brand, False) and idle < IDLE_LINGERS

    async def _drain(self, brand: str) -> None:
        try:
            queue = self._queues[brand]
            while queue:
                await self._gather(brand, queue)
                batch = queue[: self._max]
                del queue[: self._max]
                try:
                    outcomes = await self._recorder.record(brand, [t for t, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                    else:
                        await self._one_by_one(brand, batch, exc)
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    _settle(future, outcome)
        finally:
            del self._drains[brand]
            if not self._queues.get(brand):
                self._queues.pop(brand, None)

    async def _one_by_one(self, brand: str, batch: list[Waiter], exc: Exception) -> None:
        """Records a failed batch's transactions each in a unit of its own: the failure was
        one transaction's, or the store's, and each caller hears only its own."""
        # The type only: the error's text may quote the batch's values.
        log.warning("group commit batch failed; recording it one by one", error=type(exc).__name__)
        for transaction, future in batch:
            try:
                (outcome,) = await self._recorder.record(brand, [transaction])
            except Exception as own:
                _settle(future, own)
            else:
                _settle(future, outcome)


def _settle(future: asyncio.Future[Outcome], result: Outcome | Exception) -> None:
    """Answers a caller, unless it gave up (its transaction was still recorded)."""
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
