"""The unit-of-work handles use cases hand to repositories, without the runner behind them."""

from __future__ import annotations

from typing import TypeAlias

from . import bulk

# A unit of work (store.bulk's) or an ORM session: what every repository function takes.
Conn: TypeAlias = bulk.Conn
Unit: TypeAlias = bulk.Unit


def database_of(s: Conn) -> object:
    """A key for caches of database content (tests run several databases in one process)."""
    return bulk.engine_of(s)
