"""What every handler and job shares: settings, the database, the key resolver and the clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from .application.auth import KeyResolver
from .application.batcher import Batcher
from .application.ingest import Outcome, Recorder
from .application.live import Hub
from .application.open_streams import LiveStreams
from .application.sealing import Sealer, SealingConfigError, load_sealer
from .application.sftp_hosts import HostPolicy
from .config import Settings, SettingsError
from .store.engine import Database
from .store.notify import (
    AWARDS_CHANNEL,
    PROGRESS_CHANNEL,
    PgListener,
    replica_listener,
    signal_replicas,
)

log = structlog.get_logger("attain.app")


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
    award_hub: Hub = field(default_factory=Hub)
    recorder: Recorder = field(init=False)
    batcher: Batcher = field(init=False)
    listener: PgListener | None = field(init=False, default=None)
    # Seals the brands' SFTP credentials; None when the operator configured no key.
    sealer: Sealer | None = field(init=False, default=None)
    sftp_hosts: HostPolicy = field(init=False, default_factory=HostPolicy)
    streams: LiveStreams = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.sealer = load_sealer(
                keys=self.settings.secrets_key.get_secret_value(),
                key_file=self.settings.secrets_key_file,
                embedded_dir=self.settings.data_dir if self.settings.embedded else None,
            )
            self.sftp_hosts = HostPolicy.parse(self.settings.sftp_allowed_hosts)
        except (SealingConfigError, ValueError) as exc:
            raise SettingsError(str(exc)) from None
        self.recorder = Recorder(self.db, self.now)
        self.recorder.listeners.append(self._signal)
        self.batcher = Batcher(self.recorder)
        # A progress view lists its cycle's awards: what wakes award streams wakes it too.
        self.award_hub.forward_to(self.hub)
        s = self.settings
        self.streams = LiveStreams(
            per_key=s.stream_limit_per_key,
            per_brand=s.stream_limit_per_brand,
            write_timeout=s.stream_write_timeout_seconds,
        )

    def now(self) -> datetime:
        return self.clock()

    def _signal(self, brand: str, outcomes: list[Outcome]) -> None:
        # Only brands someone watches here: a stream of a thousand sales need not gather
        # a thousand members for nobody.
        if self.hub.watched(brand):
            self.hub.publish(brand, {key[2] for o in outcomes for key in o.touched})
        if self.award_hub.watched(brand):
            self.award_hub.publish(brand, {a.member_id for o in outcomes for a in o.awards})

    async def members_changed(self, brand: str, member_ids: Iterable[str]) -> None:
        """After a committed change of members' cards (level, groups, target values): their
        progress streams re-read, here and, on PostgreSQL, on every replica."""
        members = set(member_ids)
        self.hub.publish(brand, members)
        await self._tell_replicas(PROGRESS_CHANNEL, brand, members)

    async def brand_changed(self, brand: str) -> None:
        """After a committed change that may touch every member's card or awards (a target
        created, changed or archived; a cycle opened or closed): every stream of the brand
        re-reads once, here and, on PostgreSQL, on every replica."""
        self.award_hub.publish_brand(brand)  # forwarded to the progress hub
        await self._tell_replicas(AWARDS_CHANNEL, brand, None)

    async def _tell_replicas(self, channel: str, brand: str, members: set[str] | None) -> None:
        """A NOTIFY after the change committed: a failure is logged, never the caller's error
        (the write stands; the other replicas' streams see it at their next change)."""
        try:
            await signal_replicas(self.db, channel, brand, members)
        except Exception:
            log.warning("could not signal the other replicas' live streams", exc_info=True)

    async def start(self) -> None:
        """Migrates the database and starts what runs beside the handlers."""
        await self.db.migrate()
        self.listener = replica_listener(
            self.db, {PROGRESS_CHANNEL: self.hub, AWARDS_CHANNEL: self.award_hub}
        )
        if self.listener is not None:
            await self.listener.start()

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
        await self.db.dispose()

    @classmethod
    def create(cls, settings: Settings, clock: Callable[[], datetime] = system_clock) -> App:
        db = Database(settings.resolved_database_url())
        return cls(settings, db, KeyResolver(db, ttl=settings.key_cache_seconds), clock)
