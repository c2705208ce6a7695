"""Named locks across processes: PostgreSQL advisory locks, or this process's on SQLite."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from .engine import Database


@asynccontextmanager
async def advisory_lock(db: Database, name: str) -> AsyncIterator[bool]:
    """Yields True while this process holds the lock `name` (PostgreSQL only), False when
    another connection holds it; it is never waited for."""
    key = zlib.crc32(f"attain:{name}".encode())
    async with db.engine.connect() as conn:
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar()
        await conn.commit()
        if not got:
            yield False
            return
        try:
            yield True
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await conn.commit()


class NamedLocks:
    """Locks by name that one holder at a time gets and nobody waits for. On PostgreSQL
    the lock is the database's, shared by every process; the embedded SQLite is served by
    one process, so a lock of this object is enough there."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._local: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def try_hold(self, name: str) -> AsyncIterator[bool]:
        """Yields True while holding the lock `name`, False when someone else holds it."""
        if not self._db.is_sqlite:
            async with advisory_lock(self._db, name) as got:
                yield got
            return
        lock = self._local.setdefault(name, asyncio.Lock())
        if lock.locked():
            yield False
            return
        async with lock:
            yield True
