"""A call cancelled while its unit of work is beginning (a client gone, a deadline) leaves no
connection behind that would swallow later commits (PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import make_url, select, text

from attain_server.store import _runner
from attain_server.store.engine import Database
from support import migrated

TABLE = "test_cancelled_begin"

_ONE = _runner.Query(lambda: select(text("1")))


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    async with migrated(pg_url) as database:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {TABLE} (v int)"))
        try:
            yield database
        finally:
            async with database.engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE {TABLE}"))


async def _read(db: Database) -> None:
    async with db.read() as s:
        await _ONE.rows(s)


async def _unit(db: Database) -> None:
    async with db.unit() as s:
        await _ONE.rows(s)


@pytest.mark.parametrize("cut", [_read, _unit])
async def test_writes_after_a_cancelled_begin_are_committed(
    db: Database, pg_url: str, cut: Callable[[Database], Awaitable[None]]
) -> None:
    url = make_url(pg_url)
    other = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        # Cancelled after 0, 1, 2, ... turns of the loop: one of them lands inside BEGIN.
        for turns in range(40):
            task = asyncio.ensure_future(cut(db))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with db.write() as s:
                conn = await s.connection()
                await conn.execute(text(f"INSERT INTO {TABLE} VALUES (:v)"), {"v": turns})
            seen = await other.fetchval(f"SELECT count(*) FROM {TABLE} WHERE v = $1", turns)
            assert seen == 1, f"a write after a call cancelled at turn {turns} never committed"
    finally:
        await other.close()
