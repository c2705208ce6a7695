"""What every driver runner offers: compiled SQL run on the connection of one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Dialect


class CopyTarget(NamedTuple):
    """A plain INSERT seen as a COPY: its table and its columns in parameter order."""

    table: str
    columns: tuple[str, ...]


class Runner:
    """Runs compiled SQL on the connection of one unit of work."""

    __slots__ = ()
    dialect: Dialect

    async def many(self, sql: str, rows: list[tuple[Any, ...]], copy: CopyTarget | None) -> int:
        """Runs `sql` once per row; `copy` says it may be a COPY instead."""
        raise NotImplementedError

    async def rows(
        self, sql: str, args: tuple[Any, ...], describe: bool
    ) -> tuple[Sequence[Any], Sequence[tuple[str, Any]] | None]:
        """The raw rows, and (name, type code) per column when `describe`."""
        raise NotImplementedError
