"""The driver runner (store._runner) writes exactly what SQLAlchemy would, and the SQLite
adapter behaves like a driver: same values back, IntegrityError on a duplicate key,
rollback, fresh reads."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import col, select

from attain_server.store import _runner
from attain_server.store._runner.sqlite import SqliteRunner, wrapped
from attain_server.store.engine import Database
from attain_server.store.tables import BrandRow, TransactionRow
from support import migrated

TXN = TransactionRow.__table__  # type: ignore[attr-defined]


def _row(brand: str, txn_id: str, when: datetime) -> dict[str, Any]:
    # store_id and original_id are left out: their scalar defaults ("") apply.
    return {
        "brand_code": brand,
        "id": txn_id,
        "member_id": "M-1",
        "type": "SALE",
        "occurred_time": when,
        "lines": [["SKU-1", "food", "1", "0.10"]],
        "net_lines": None,
        "counted_in": [["T", "2026-11"]],
        "record_time": when,
    }


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated(database_url) as database:
        yield database


_INSERT = _runner.Write(lambda: insert(TXN))
_RETYPE = _runner.Write(
    lambda: (
        update(TXN)
        .where(TXN.c.brand_code == bindparam("b_brand"), TXN.c.id == bindparam("b_id"))
        .values(type="RETURN", net_lines=bindparam("b_net"))
    )
)
_UPDATE = _runner.UpdateRows(
    TXN,
    match=(("brand_code", "b_brand"), ("id", "b_id"), ("type", "b_type")),
    values=("type", "net_lines", "record_time"),
)
_BY_ID = _runner.QueryIn(
    lambda n: select(TXN.c.id, TXN.c.occurred_time).where(
        TXN.c.brand_code == bindparam("brand"), _runner.in_list(TXN.c.id, n)
    )
)


async def _insert(conn: _runner.Conn, rows: list[dict[str, Any]]) -> int:
    return await _INSERT.run(conn, rows)


def _orm_row(brand: str, txn_id: str, when: datetime) -> TransactionRow:
    """The same row as an ORM entity (which leaves no column to a default)."""
    return TransactionRow(**{**_row(brand, txn_id, when), "store_id": "", "original_id": ""})


async def _ids(db: Database, brand: str) -> list[str]:
    async with db.read() as s:
        rows = await s.exec(select(TransactionRow.id).where(TransactionRow.brand_code == brand))
        return sorted(rows.all())


async def _brand(db: Database) -> str:
    code = f"BK{uuid.uuid4().hex[:8].upper()}"
    async with db.write() as s:
        s.add(BrandRow(code=code, time_zone="UTC", create_time=datetime.now(UTC)))
    return code


async def test_bulk_rows_read_back_as_the_orm_wrote_them(db: Database) -> None:
    brand = await _brand(db)
    jakarta = timezone(timedelta(hours=7))
    when = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=jakarta)
    async with db.write() as s:
        await _insert(s, [_row(brand, f"T{i}", when) for i in range(3)])
        s.add(_orm_row(brand, "ORM", when))
    async with db.read() as s:
        rows = (
            await s.exec(
                select(TransactionRow)
                .where(TransactionRow.brand_code == brand)
                .order_by(col(TransactionRow.id))
            )
        ).all()
    assert [r.id for r in rows] == ["ORM", "T0", "T1", "T2"]
    for r in rows:
        assert (r.store_id, r.original_id, r.net_lines) == ("", "", None)
        assert r.lines == [["SKU-1", "food", "1", "0.10"]]
        assert r.occurred_time == when and r.occurred_time.tzinfo is not None


async def test_bulk_updates_count_rows_and_take_literals(db: Database) -> None:
    brand = await _brand(db)
    now = datetime.now(UTC)
    async with db.write() as s:
        await _insert(s, [_row(brand, f"U{i}", now) for i in range(4)])
    async with db.write() as s:
        changed = await _RETYPE.run(
            s,
            [{"b_brand": brand, "b_id": f"U{i}", "b_net": [["X", "", "1", "2"]]} for i in range(3)],
        )
    # sqlite3 counts the rows an executemany changed; asyncpg's executemany does not tell.
    assert changed == (3 if db.dialect == "sqlite" else -1)
    async with db.read() as s:
        types = (
            await s.exec(
                select(TransactionRow.id, TransactionRow.type, TransactionRow.net_lines)
                .where(TransactionRow.brand_code == brand)
                .order_by(col(TransactionRow.id))
            )
        ).all()
    assert [tuple(t) for t in types] == [
        ("U0", "RETURN", [["X", "", "1", "2"]]),
        ("U1", "RETURN", [["X", "", "1", "2"]]),
        ("U2", "RETURN", [["X", "", "1", "2"]]),
        ("U3", "SALE", None),
    ]


async def test_a_duplicate_key_is_an_integrity_error_and_nothing_stays(db: Database) -> None:
    brand = await _brand(db)
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        async with db.write() as s:
            await _insert(s, [_row(brand, "D1", now)])
            await _insert(s, [_row(brand, "D1", now)])
    assert await _ids(db, brand) == []  # the unit of work rolled back as a whole


async def test_a_duplicate_among_many_rows_is_an_integrity_error_and_nothing_stays(
    db: Database,
) -> None:
    """Several rows at once are one COPY on PostgreSQL: its unique violation is the same
    IntegrityError, and none of the rows stays."""
    brand = await _brand(db)
    now = datetime.now(UTC)
    async with db.write() as s:
        await _insert(s, [_row(brand, "KEEP", now)])
    with pytest.raises(IntegrityError):
        async with db.write() as s:
            await _insert(
                s, [_row(brand, f"N{i}", now) for i in range(3)] + [_row(brand, "KEEP", now)]
            )
    assert await _ids(db, brand) == ["KEEP"]


async def test_bulk_inserts_count_their_rows(db: Database) -> None:
    brand = await _brand(db)
    now = datetime.now(UTC)
    async with db.write() as s:
        many = await _insert(s, [_row(brand, f"C{i}", now) for i in range(5)])
        one = await _insert(s, [_row(brand, "C-ONE", now)])
    # sqlite3 counts executemany rows; on PostgreSQL several rows are a COPY, which counts
    # them, and one row an executemany, which does not.
    assert (many, one) == ((5, 1) if db.dialect == "sqlite" else (5, -1))


async def test_update_rows_sets_values_where_the_match_holds_and_counts(db: Database) -> None:
    """One statement on PostgreSQL (arrays), an executemany on SQLite: the same rows change,
    with the same values and types, and both count them."""
    brand = await _brand(db)
    now = datetime.now(UTC)
    async with db.write() as s:
        await _insert(s, [_row(brand, f"V{i}", now) for i in range(4)])
    later = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=7)))
    rows = [
        {
            "b_brand": brand,
            "b_id": f"V{i}",
            "b_type": "SALE",
            "type": "RETURN",
            "net_lines": [["X", "", "1", f"{i}.50"]],
            "record_time": later,
        }
        for i in range(3)
    ]
    rows[2]["b_type"] = "RETURN"  # V2 is a SALE: this row matches nothing
    async with db.write() as s:
        changed = await _UPDATE.run(s, rows)
    assert changed == 2
    async with db.read() as s:
        found = (
            await s.exec(
                select(
                    TransactionRow.id,
                    TransactionRow.type,
                    TransactionRow.net_lines,
                    TransactionRow.record_time,
                )
                .where(TransactionRow.brand_code == brand)
                .order_by(col(TransactionRow.id))
            )
        ).all()
    assert [tuple(r) for r in found] == [
        ("V0", "RETURN", [["X", "", "1", "0.50"]], later),
        ("V1", "RETURN", [["X", "", "1", "1.50"]], later),
        ("V2", "SALE", None, now),
        ("V3", "SALE", None, now),
    ]


async def test_a_row_without_a_required_column_is_refused(db: Database) -> None:
    brand = await _brand(db)
    row = _row(brand, "K1", datetime.now(UTC))
    del row["member_id"]  # NOT NULL and no default: the database refuses the row
    with pytest.raises(IntegrityError, match="member_id"):
        async with db.write() as s:
            await _INSERT.run(s, [row])


# ---------------------------------------------------------------- units of work


async def test_a_unit_commits_driver_writes_and_orm_writes_together(db: Database) -> None:
    brand = await _brand(db)
    now = datetime.now(UTC)
    async with db.unit() as unit:
        await _insert(unit, [_row(brand, "W1", now)])
        orm = await unit.session()  # joins the same transaction
        seen = (
            await orm.exec(select(TransactionRow.id).where(TransactionRow.brand_code == brand))
        ).all()
        assert list(seen) == ["W1"]
        orm.add(_orm_row(brand, "W2", now))
    assert await _ids(db, brand) == ["W1", "W2"]


@pytest.mark.parametrize("with_session", [False, True])
async def test_a_failing_unit_leaves_nothing(db: Database, with_session: bool) -> None:
    brand = await _brand(db)
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        async with db.unit() as unit:
            await _insert(unit, [_row(brand, "F1", now)])
            if with_session:
                await unit.session()
            # The same key again: the database refuses it.
            await _insert(unit, [_row(brand, "F1", now)])
    assert await _ids(db, brand) == []
    # The unit's connection is usable again afterwards.
    async with db.unit() as unit:
        await _insert(unit, [_row(brand, "F2", now)])
    assert await _ids(db, brand) == ["F2"]


async def test_query_in_returns_every_row_of_long_and_odd_sized_lists(db: Database) -> None:
    brand = await _brand(db)
    now = datetime.now(UTC)
    ids = [f"L{i:04d}" for i in range(1300)]
    async with db.unit() as unit:
        await _insert(unit, [_row(brand, i, now) for i in ids])
    for wanted in (ids[:1], ids[:3], ids[:513], [*ids[::2], "NOPE"], ids):
        async with db.reader() as reader:
            rows = await _BY_ID.rows(reader, {"brand": brand}, wanted)
        assert sorted(r.id for r in rows) == sorted(set(wanted) - {"NOPE"})
        assert all(r.occurred_time.tzinfo is UTC for r in rows)


async def test_sqlite_writes_reach_the_database_file_through_the_checkpoint_thread(
    db: Database,
) -> None:
    if not db.is_sqlite:
        pytest.skip("the WAL checkpoint thread is SQLite's")
    brand = await _brand(db)
    now = datetime.now(UTC)
    for i in range(50):
        async with db.unit() as unit:
            await _insert(unit, [_row(brand, f"C{i:03d}", now)])
    path = db.url.database
    assert path
    # The writer's own checkpoints are off: only the thread moves pages into the file.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        # immutable=1 reads the database file alone, ignoring the WAL.
        with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as file:
            try:
                count = file.execute(
                    "SELECT count(*) FROM txn WHERE brand_code = ?", (brand,)
                ).fetchone()[0]
            except sqlite3.OperationalError:  # not even the schema is in the file yet
                count = 0
        if count == 50 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert count == 50


async def test_a_unit_whose_orm_flush_fails_at_commit_leaves_nothing(db: Database) -> None:
    brand = await _brand(db)
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        async with db.unit() as unit:
            await _insert(unit, [_row(brand, "X1", now)])
            orm = await unit.session()
            # Flushed only when the unit commits, and refused then: the same key again.
            orm.add(_orm_row(brand, "X1", now))
    assert await _ids(db, brand) == []
    # The next unit on the same connection starts clean: X1 does not come back with it.
    async with db.unit() as unit:
        await _insert(unit, [_row(brand, "X2", now)])
    assert await _ids(db, brand) == ["X2"]


async def test_a_failed_sqlite_commit_does_not_leak_into_the_next_unit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not db.is_sqlite:
        pytest.skip("the shared writer connection is SQLite's")
    brand = await _brand(db)
    now = datetime.now(UTC)
    original = SqliteRunner.end
    failures = [sqlite3.OperationalError("disk I/O error")]

    def end(runner: Any, commit: bool) -> None:
        if commit and failures:  # the COMMIT fails and the transaction stays open
            raise wrapped("COMMIT", (), failures.pop())
        original(runner, commit)

    monkeypatch.setattr(SqliteRunner, "end", end)
    with pytest.raises(OperationalError):
        async with db.unit() as unit:
            await _insert(unit, [_row(brand, "Y1", now)])
    async with db.unit() as unit:
        await _insert(unit, [_row(brand, "Y2", now)])
    assert await _ids(db, brand) == ["Y2"]
