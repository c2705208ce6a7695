"""One holder per scheduled job: an advisory lock on PostgreSQL, an in-process lock on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from attain_server.store.engine import Database
from attain_server.store.locks import advisory_lock


class JobLocks:
    """Several workers never run the same job at once: on PostgreSQL the lock is the
    database's, shared by every process; the embedded SQLite has one worker process, so a
    lock of this process is enough."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._local: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        """Yields True while holding the job's lock, False when someone else holds it."""
        if self._db.is_sqlite:
            lock = self._local.setdefault(name, asyncio.Lock())
            if lock.locked():
                yield False
                return
            async with lock:
                yield True
            return
        async with advisory_lock(self._db, name) as got:
            yield got
