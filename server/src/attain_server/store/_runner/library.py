"""The runner's only reaches into SQLAlchemy's private attributes, where no public API exists.

Checked against SQLAlchemy 2.1.9 with asyncpg 0.32.0 (docs/decisions/0028). Each reach is one
function here; tests/store/test_runner_library.py fails loudly when an attribute goes away.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Dialect


def adapter_in_transaction(adapted: Any) -> bool:
    """Whether SQLAlchemy's asyncpg adapter has begun its transaction on the connection.

    asyncpg's own `is_in_transaction()` would also count a transaction the adapter never
    learnt of (a cancelled BEGIN), whose writes the adapter's commit would never commit."""
    return adapted._transaction is not None


async def adapter_begin(adapted: Any) -> None:
    """Begins the adapter's transaction as its first statement would: the adapter then
    commits or rolls it back with the unit of work. Its public cursor would send a statement
    of its own as well, a round trip more."""
    await adapted._start_transaction()


def adapter_error(adapted: Any, exc: Exception) -> Exception:
    """The DBAPI-level error the adapter raises for an asyncpg error (IntegrityError and the
    rest), so callers see the errors SQLAlchemy's own path raises."""
    try:
        adapted._handle_exception(exc)
    except Exception as translated:
        return translated
    return exc  # pragma: no cover - _handle_exception always raises


def json_codec(dialect: Dialect) -> tuple[Callable[[Any], str], Callable[[Any], Any]]:
    """The JSON serializer and deserializer the engine was made with (`json_serializer=`,
    `json_deserializer=`): the dialect keeps them but offers no public accessor."""
    dumps = getattr(dialect, "_json_serializer", None) or json.dumps
    loads = getattr(dialect, "_json_deserializer", None) or json.loads
    return dumps, loads
