"""Migration 0007 on a database that has settings with the old credential_ref: the reference
is gone and the brand is disabled until it sets a credential (both databases)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from attain_server.application.sftp_settings import all_settings, get_settings
from attain_server.store.engine import Database, alembic_config
from conftest import PG_ADMIN_URL, PG_REQUIRED, _pg_connect

# A literal both databases read as the time their UtcDateTime columns hold.
WHEN = "'2026-12-01 00:00:00'"


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own: the shared ones are already at the newest revision."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    try:
        conn = await _pg_connect()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if PG_REQUIRED:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} does not answer: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: nothing answers at {PG_ADMIN_URL} ({exc})")
    name = f"attain_mig_{os.getpid()}_{secrets.token_hex(3)}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


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
