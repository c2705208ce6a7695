"""Migration 0007 on a database that has settings with the old credential_ref: the reference
is gone and the brand is disabled until it sets a credential (both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from attain_server.application.sftp_settings import all_settings, get_settings
from attain_server.store.engine import Database, alembic_config
from conftest import pg_database

# A literal both databases read as the time their UtcDateTime columns hold.
WHEN = "'2026-12-01 00:00:00'"


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own: the shared ones are already at the newest revision."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    async with pg_database("attain_mig") as url:
        yield url


def _to(revision: str) -> object:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return run


async def test_old_references_are_dropped_and_their_brands_disabled(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        async with db.engine.connect() as conn:
            await conn.run_sync(_to("0006"))  # type: ignore[arg-type]
            await conn.execute(
                text(
                    "INSERT INTO brand (code, display_name, time_zone, create_time) "
                    f"VALUES ('OLD', '', 'UTC', {WHEN})"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO sftp_settings (brand_code, enabled, host, port, username, "
                    "credential_ref, host_key, targets_folder, transactions_folder, "
                    "processed_folder, failed_folder, poll_interval_seconds, update_time) "
                    "VALUES ('OLD', true, 'h', 22, 'u', 'env:ATTAIN_DATABASE_URL', 'k', '', "
                    f"'/t', '/p', '/f', 60, {WHEN})"
                )
            )
            await conn.commit()
        await db.migrate()
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns("sftp_settings")]
            )
        assert "credential_ref" not in columns
        old = await get_settings(db=db, brand="OLD")
        assert (old.enabled, old.credential, old.host) == (False, None, "h")
        assert "OLD" not in await all_settings(db=db)  # the worker does not poll it
    finally:
        await db.dispose()
