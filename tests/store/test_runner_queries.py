"""The runner's declarative statements (Query, QueryIn, Write) on both databases, and what
the plans decide: a COPY only for plain inserts, rows built as SQLAlchemy would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg

from attain_server.store._runner import Query, QueryIn, Write, in_list
from attain_server.store._runner.plans import copy_target, row_maker, write_plan
from attain_server.store.engine import Database
from attain_server.store.tables import BrandRow, TransactionRow
from support import migrated

TXN = TransactionRow.__table__  # type: ignore[attr-defined]


class Txn(NamedTuple):
    id: str
    lines: Any


ADD = Write(lambda: insert(TXN))
BY_BRAND = Query(
    lambda: (
        select(TXN.c.id, TXN.c.lines)
        .where(TXN.c.brand_code == bindparam("brand"))
        .order_by(TXN.c.id)
    ),
    row=Txn,
)
BY_ID = QueryIn(
    lambda size: select(TXN.c.id).where(
        TXN.c.brand_code == bindparam("brand"), in_list(TXN.c.id, size)
    )
)
WRONG_FIELDS = Query(lambda: select(TXN.c.id.label("other")), row=Txn)


def _row(brand: str, txn_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "brand_code": brand,
        "id": txn_id,
        "member_id": "M-1",
        "type": "SALE",
        "occurred_time": now,
        "lines": [["SKU-1", "food", "1", "0.10"]],
        "net_lines": None,
        "counted_in": [["T", "2026-11"]],
        "record_time": now,
    }


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated(database_url) as database:
        yield database


async def _brand(db: Database) -> str:
    code = f"RQ{uuid.uuid4().hex[:8].upper()}"
    async with db.write() as s:
        s.add(BrandRow(code=code, time_zone="UTC", create_time=datetime.now(UTC)))
    return code


async def test_declared_statements_write_and_read_typed_rows(db: Database) -> None:
    brand = await _brand(db)
    async with db.unit() as unit:
        written = await ADD.run(unit, [_row(brand, f"T{i:04}") for i in range(5)])
        assert await ADD.run(unit, []) == 0
    assert written == 5
    async with db.reader() as s:
        rows = await BY_BRAND.rows(s, {"brand": brand})
        some = await BY_ID.rows(s, {"brand": brand}, ["T0001", "T0003", "T0004"])
    assert [r.id for r in rows] == [f"T{i:04}" for i in range(5)]
    assert all(isinstance(r, Txn) for r in rows)
    assert rows[0].lines == [["SKU-1", "food", "1", "0.10"]]  # decoded by the type
    assert sorted(r.id for r in some) == ["T0001", "T0003", "T0004"]


async def test_a_row_type_must_name_the_selected_columns(db: Database) -> None:
    async with db.reader() as s:
        with pytest.raises(TypeError, match="fields"):
            await WRONG_FIELDS.rows(s)


async def test_a_postgresql_variant_runs_only_there(db: Database) -> None:
    ran: list[str] = []

    def build() -> Any:
        ran.append("general")
        return select(TXN.c.id).where(TXN.c.brand_code == bindparam("brand"))

    def on_postgresql() -> Any:
        ran.append("postgresql")
        return build().with_for_update()

    query = Query(build, postgresql=on_postgresql)
    async with db.write() as s:
        assert await query.rows(s, {"brand": "NONE"}) == []
    assert ran[0] == ("postgresql" if db.dialect == "postgresql" else "general")


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_only_a_plain_insert_is_a_copy(name: str) -> None:
    # The dialects Attain runs on (positional parameters on both).
    dialect = (sqlite if name == "sqlite" else asyncpg).dialect()
    keys = ("brand_code", "id", "member_id", "type", "occurred_time", "lines", "record_time")
    plain = write_plan(insert(TXN), dialect, keys)
    assert plain.copy is not None and plain.copy.table == TXN.name
    literal = write_plan(insert(TXN).values(type="SALE"), dialect, keys[:3])
    assert literal.copy is not None and "type" in literal.copy.columns
    upsert = (sqlite if name == "sqlite" else postgresql).insert(TXN).on_conflict_do_nothing()
    for stmt in (
        insert(TXN).returning(TXN.c.id),
        upsert,
    ):
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        order = compiled.positiontup or ()
        assert copy_target(stmt, dialect, compiled.string, order) is None


def test_rows_become_parameters_with_processors_and_constants() -> None:
    make = row_maker([("a", None), (None, "K"), ("b", str), (None, 7), ("c", None)])
    assert make({"a": 1, "b": 2, "c": 3}) == (1, "K", "2", 7, 3)
    assert row_maker([("a", None)])({"a": 1}) == (1,)
    assert row_maker([("a", None), ("b", None)])({"a": 1, "b": 2}) == (1, 2)
    assert row_maker([("a", int)])({"a": "5"}) == (5,)
