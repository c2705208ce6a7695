"""INSERT ... ON CONFLICT for both dialects, so uniqueness is decided by the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlmodel.ext.asyncio.session import AsyncSession


def insert(session: AsyncSession, table: Table) -> Any:
    """The dialect's INSERT construct (it knows on_conflict_do_*)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert_statement(
    session: AsyncSession,
    table: Table,
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> Insert:
    stmt = insert(session, table)
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
    )
