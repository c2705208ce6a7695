"""Group commit for single transactions: concurrent RecordTransaction calls share one commit.

Per brand, calls queue up while a batch is being written and go together into the next one.
With one caller at a time a batch holds one transaction, so nothing waits for company.
"""

from __future__ import annotations

import asyncio

from attain_server.domain.transactions import Transaction

from .ingest import Outcome, Recorder

MAX_BATCH = 256


class Batcher:
    def __init__(self, recorder: Recorder, max_batch: int = MAX_BATCH) -> None:
        self._recorder = recorder
        self._max = max_batch
        self._queues: dict[str, list[tuple[Transaction, asyncio.Future[Outcome]]]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}

    async def record(self, brand: str, transaction: Transaction) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(brand, []).append((transaction, future))
        if brand not in self._drains:
            self._drains[brand] = asyncio.create_task(self._drain(brand))
        return await future

    async def _drain(self, brand: str) -> None:
        try:
            queue = self._queues[brand]
            while queue:
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
