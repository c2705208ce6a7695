"""PostgreSQL connections kept between reads and between units of work: reused while they
are sound, replaced when the server closed them, never kept in a doubtful state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Select, func, make_url, select, text

from attain_server.store import _runner
from attain_server.store.engine import PG_KEPT_CONNECTIONS, Database
from support import migrated


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    async with migrated(pg_url) as database:
        yield database


async def _admin(pg_url: str) -> asyncpg.Connection:
    url = make_url(pg_url)
    return await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )


def _pid_query() -> Select[tuple[int]]:
    return select(func.pg_backend_pid().label("pid"))


_PID = _runner.Query(_pid_query)
_SLEEP = _runner.Query(lambda: select(func.pg_sleep(5).label("x")))


async def _read_pid(db: Database) -> int:
    async with db.reader() as s:
        rows = await _PID.rows(s)
    return int(rows[0].pid)


async def _unit_pid(db: Database) -> int:
    async with db.unit() as s:
        rows = await _PID.rows(s)
    return int(rows[0].pid)


async def _state(admin: asyncpg.Connection, pid: int) -> str | None:
    state: str | None = await admin.fetchval(
        "SELECT state FROM pg_stat_activity WHERE pid = $1", pid
    )
    return state


async def test_reads_and_units_one_after_another_use_the_same_backend(db: Database) -> None:
    first_read = await _read_pid(db)
    assert [await _read_pid(db) for _ in range(5)] == [first_read] * 5
    first_unit = await _unit_pid(db)
    assert [await _unit_pid(db) for _ in range(5)] == [first_unit] * 5


async def test_reads_in_flight_together_each_get_their_own_connection(db: Database) -> None:
    started = asyncio.Event()
    pids: list[int] = []

    async def read(hold: bool) -> None:
        async with db.reader() as s:
            rows = await _PID.rows(s)
            pids.append(int(rows[0].pid))
            if hold:
                started.set()
                await asyncio.sleep(0.05)

    holder = asyncio.create_task(read(True))
    await started.wait()
    await read(False)
    await holder
    assert len(set(pids)) == 2
    # At most PG_KEPT_CONNECTIONS stay out of the pool, however many ran at once.
    await asyncio.gather(*(read(False) for _ in range(3 * PG_KEPT_CONNECTIONS)))
    assert len(db._pg_readers) <= PG_KEPT_CONNECTIONS


async def test_a_connection_the_server_closed_is_replaced(db: Database, pg_url: str) -> None:
    read_pid, unit_pid = await _read_pid(db), await _unit_pid(db)
    admin = await _admin(pg_url)
    try:
        for pid in (read_pid, unit_pid):
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        # The kept connections learn of it when their sockets close.
        for _ in range(100):
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", [read_pid, unit_pid]
            ):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
    finally:
        await admin.close()
    assert await _read_pid(db) != read_pid
    assert await _unit_pid(db) != unit_pid


async def test_reads_after_a_cancelled_one_run_at_once(db: Database) -> None:
    async def slow() -> None:
        async with db.reader() as s:
            await _SLEEP.rows(s)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow(), timeout=0.1)

    # The next reads run at once, on a connection with no statement of the old one pending.
    async def pid_soon() -> int:
        return await asyncio.wait_for(_read_pid(db), timeout=2)

    assert all([await pid_soon() for _ in range(3)])


async def test_a_failed_unit_rolls_back_and_the_next_one_commits(db: Database) -> None:
    # A table of its own, dropped after: the test database is shared by the whole run.
    table = f"kept_{uuid.uuid4().hex[:12]}"
    async with db.unit() as s:
        await s.conn.execute(text(f"CREATE TABLE {table} (x int)"))
    try:
        with pytest.raises(RuntimeError):
            async with db.unit() as s:
                await s.conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
                raise RuntimeError("the unit fails")
        async with db.unit() as s:
            await s.conn.execute(text(f"INSERT INTO {table} VALUES (2)"))
        async with db.reader() as s:
            found = (await s.conn.execute(text(f"SELECT x FROM {table} ORDER BY x"))).scalars()
            assert found.all() == [2]
    finally:
        async with db.unit() as s:
            await s.conn.execute(text(f"DROP TABLE {table}"))


async def test_a_kept_read_connection_is_never_left_in_a_transaction(
    db: Database, pg_url: str
) -> None:
    async with db.reader() as s:
        # Anything that begins a transaction on the read connection (SQLAlchemy autobegins).
        began = (await s.conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert s.conn.in_transaction()
    admin = await _admin(pg_url)
    try:
        assert await _state(admin, began) == "idle"
        assert await _read_pid(db) == began  # kept, once its transaction ended
    finally:
        await admin.close()
