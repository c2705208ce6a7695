"""What every handler and job shares: settings, the database, the key resolver and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .application.auth import KeyResolver
from .config import Settings
from .store.engine import Database


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    db: Database
    keys: KeyResolver
    # Injectable so tests move time instead of waiting.
    clock: Callable[[], datetime] = field(default=system_clock)

    def now(self) -> datetime:
        return self.clock()

    @classmethod
    def create(cls, settings: Settings, clock: Callable[[], datetime] = system_clock) -> App:
        db = Database(settings.resolved_database_url())
        return cls(settings, db, KeyResolver(db, ttl=settings.key_cache_seconds), clock)
