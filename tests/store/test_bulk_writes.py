"""store.bulk writes exactly what SQLAlchemy would, and the SQLite adapter behaves like a
driver: same values back, IntegrityError on a duplicate key, rollback, fresh reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from attain_server.store import bulk
from attain_server.store.engine import Database
from attain_server.store.tables import BrandRow, TransactionRow

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
        "fingerprint": "f" * 64,
        "record_time": when,
    }


@pytest.fixture
async def db(database_url: str) -> Database:
    database = Database(database_url)
    await database.migrate()
    return database


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
        await bulk.executemany(
            s,
            "test.txn.insert",
            lambda: insert(TXN),
            [_row(brand, f"T{i}", when) for i in range(3)],
        )
        s.add(TransactionRow(**{**_row(brand, "ORM", when), "store_id": "", "original_id": ""}))
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
        await bulk.executemany(
            s, "test.txn.insert", lambda: insert(TXN), [_row(brand, f"U{i}", now) for i in range(4)]
        )
    async with db.write() as s:
        changed = await bulk.executemany(
            s,
            "test.txn.retype",
            lambda: (
                update(TXN)
                .where(TXN.c.brand_code == bindparam("b_brand"), TXN.c.id == bindparam("b_id"))
                .values(type="RETURN", net_lines=bindparam("b_net"))
            ),
            [{"b_brand": brand, "b_id": f"U{i}", "b_net": [["X", "", "1", "2"]]} for i in range(3)],
        )
    assert changed in (3, -1)  # -1 where the driver does not count executemany rows
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
            await bulk.executemany(
                s, "test.txn.insert", lambda: insert(TXN), [_row(brand, "D1", now)]
            )
            await bulk.executemany(
                s, "test.txn.insert", lambda: insert(TXN), [_row(brand, "D1", now)]
            )
    async with db.read() as s:
        left = (
            await s.exec(select(TransactionRow.id).where(TransactionRow.brand_code == brand))
        ).all()
    assert left == []  # the unit of work rolled back as a whole


async def test_a_row_without_a_required_column_is_refused(db: Database) -> None:
    brand = await _brand(db)
    row = _row(brand, "K1", datetime.now(UTC))
    del row["fingerprint"]  # NOT NULL and no default: the database refuses the row
    with pytest.raises(IntegrityError, match="fingerprint"):
        async with db.write() as s:
            await bulk.executemany(s, "test.txn.insert.nofp", lambda: insert(TXN), [row])
