"""One holder per scheduled job, across every worker process that shares the database."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from attain_server.store.engine import Database
from attain_server.store.locks import NamedLocks


class JobLocks:
    """Several workers never run the same job at once; a job whose lock is taken is
    skipped, not waited for. The store picks the lock the database needs (decision 0030)."""

    def __init__(self, db: Database) -> None:
        self._locks = NamedLocks(db)

    def hold(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Yields True while holding the job's lock, False when someone else holds it."""
        return self._locks.try_hold(name)
