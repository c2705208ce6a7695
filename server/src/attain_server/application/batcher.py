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
"""

from __future__ import annotations

import asyncio

from attain_server.domain.transactions import Transaction

from .ingest import Outcome, Recorder

MAX_BATCH = 256
PROBE_EVERY = 64
LINGER_SECONDS = 0.0003
LINGER_TURNS = 8
IDLE_LINGERS = 4


class Batcher:
    def __init__(self, recorder: Recorder, max_batch: int = MAX_BATCH) -> None:
        self._recorder = recorder
        self._max = max_batch
        self._queues: dict[str, list[tuple[Transaction, asyncio.Future[Outcome]]]] = {}
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

    async def _gather(
        self, brand: str, queue: list[tuple[Transaction, asyncio.Future[Outcome]]]
    ) -> None:
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
                except Exception as exc:  # the whole batch failed: every caller hears why
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():  # a caller that gave up still had its row written
                        future.set_result(outcome)
        finally:
            del self._drains[brand]
            if not self._queues.get(brand):
                self._queues.pop(brand, None)
