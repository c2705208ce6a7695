"""Alembic environment: runs on the connection Database.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from attain_server.store import tables  # noqa: F401  (registers the tables on the metadata)

target_metadata = SQLModel.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through attain_server.store.engine.Database.migrate")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
