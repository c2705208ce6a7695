"""The unit-of-work handles use cases hand to repositories, without the runner behind them."""

from __future__ import annotations

from typing import TypeAlias

from . import _runner as runner

# A unit of work (the runner's) or an ORM session: what every repository function takes.
Conn: TypeAlias = runner.Conn
Unit: TypeAlias = runner.Unit


def database_of(s: Conn) -> object:
    """A key for caches of database content (tests run several databases in one process)."""
    return runner.engine_of(s)
