"""The runner on PostgreSQL: asyncpg directly, inside the transaction SQLAlchemy keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from .base import CopyTarget, Runner
from .library import adapter_begin, adapter_error, adapter_in_transaction

# Inserts of at least this many rows go through COPY on PostgreSQL.
COPY_FROM_ROWS = 2


class AsyncpgRunner(Runner):
    """asyncpg directly, inside the transaction SQLAlchemy's adapter keeps for the
    connection (begun here if no statement began it yet): no greenlet hop, no execution
    context. Errors are translated as the adapter translates them."""

    __slots__ = ("_adapted", "_transaction", "dialect", "driver")

    def __init__(self, adapted: Any, driver: Any, dialect: Dialect, transaction: bool) -> None:
        self._adapted = adapted
        self.driver = driver  # the asyncpg connection
        self._transaction = transaction
        self.dialect = dialect

    async def _begin(self) -> None:
        if self._transaction and not adapter_in_transaction(self._adapted):
            try:
                await adapter_begin(self._adapted)
            except BaseException:
                # A BEGIN cut off (a cancelled call) leaves asyncpg inside a transaction
                # that SQLAlchemy never learnt of, so no rollback reaches it: the next BEGIN
                # on this pooled connection would become a SAVEPOINT in it, and every commit
                # after that would be lost. Closed, the pool replaces it at checkout.
                self.driver.terminate()
                raise

    def _error(self, sql: str, params: Any, exc: Exception) -> BaseException:
        translated = adapter_error(self._adapted, exc)
        return DBAPIError.instance(sql, params, translated, self.dialect.loaded_dbapi.Error)

    async def many(self, sql: str, rows: list[tuple[Any, ...]], copy: CopyTarget | None) -> int:
        try:
            await self._begin()
            if copy is not None and len(rows) >= COPY_FROM_ROWS:
                # Binary COPY: the same values through the same codecs, as one stream rather
                # than a Bind and Execute per row.
                status = await self.driver.copy_records_to_table(
                    copy.table, records=rows, columns=copy.columns
                )
                return int(status.rsplit(" ", 1)[-1])  # "COPY <rows>"
            await self.driver.executemany(sql, rows)
        except Exception as exc:
            raise self._error(sql, rows[:1], exc) from exc
        return -1

    async def update_arrays(self, sql: str, arrays: list[list[Any]]) -> int:
        try:
            await self._begin()
            status = await self.driver.execute(sql, *arrays)
        except Exception as exc:
            raise self._error(sql, tuple(a[:1] for a in arrays), exc) from exc
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE <rows>"

    async def rows(
        self, sql: str, args: tuple[Any, ...], describe: bool
    ) -> tuple[Sequence[Any], Sequence[tuple[str, Any]] | None]:
        try:
            await self._begin()
            if describe:
                stmt = await self.driver.prepare(sql)
                records = await stmt.fetch(*args)
                return records, [(a.name, a.type.oid) for a in stmt.get_attributes()]
            return await self.driver.fetch(sql, *args), None
        except Exception as exc:
            raise self._error(sql, args, exc) from exc
