"""The migrations build exactly the schema the table models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import attain_server.store.tables  # noqa: F401  (registers the models)
from attain_server.store.engine import HOT_CACHE_KIB, Database


async def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
        )
        indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("txn"))
    await db.dispose()
    assert diff == []
    # Transactions are read by id only: no index by member to pay for on every insert.
    assert [i["name"] for i in indexes] == []


async def test_sqlite_hot_connections_get_the_larger_page_cache(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.migrate()
    async with db.unit() as unit:
        writer = await unit.conn.exec_driver_sql("PRAGMA cache_size")
        writer_kib = writer.scalar_one()
    async with db.reader() as unit:
        reader = await unit.conn.exec_driver_sql("PRAGMA cache_size")
        reader_kib = reader.scalar_one()
    async with db.engine.connect() as conn:  # any other connection keeps SQLite's default
        other_kib = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    await db.dispose()
    assert writer_kib == reader_kib == -HOT_CACHE_KIB
    assert other_kib == -2000
