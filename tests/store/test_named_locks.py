"""Named locks (store/locks.py): one holder at a time, nobody waits, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from attain_server.store.engine import Database
from attain_server.store.locks import NamedLocks
from support import migrated


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated(database_url) as database:
        yield database


async def test_a_held_lock_refuses_a_second_holder_until_released(db: Database) -> None:
    locks = NamedLocks(db)
    async with locks.try_hold("job:a") as first:
        assert first
        async with locks.try_hold("job:a") as second:
            assert not second
        async with locks.try_hold("job:b") as other:
            assert other  # another name is another lock
    async with locks.try_hold("job:a") as later:
        assert later


async def test_holders_of_other_processes_are_refused_on_postgresql(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("the embedded SQLite is served by one process: its locks are local")
    async with NamedLocks(db).try_hold("job:c") as first:
        assert first
        async with NamedLocks(db).try_hold("job:c") as second:
            assert not second
