"""What every handler and job shares: settings, the database, the key resolver and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .application.auth import KeyResolver
from .application.batcher import Batcher
from .application.ingest import Recorder
from .application.live import Hub, PgListener
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
    hub: Hub = field(default_factory=Hub)
    recorder: Recorder = field(init=False)
    batcher: Batcher = field(init=False)
    listener: PgListener | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.db, self.now)
        self.recorder.listeners.append(
            lambda brand, keys: self.hub.publish(brand, {key[2] for key in keys})
        )
        self.batcher = Batcher(self.recorder)

    def now(self) -> datetime:
        return self.clock()

    async def start(self) -> None:
        """Migrates the database and starts what runs beside the handlers."""
        await self.db.migrate()
        if self.db.dialect == "postgresql":
            self.listener = PgListener(self.db.url, self.hub)
            await self.listener.start()

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
        await self.db.dispose()

    @classmethod
    def create(cls, settings: Settings, clock: Callable[[], datetime] = system_clock) -> App:
        db = Database(settings.resolved_database_url())
        return cls(settings, db, KeyResolver(db, ttl=settings.key_cache_seconds), clock)
