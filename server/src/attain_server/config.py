"""Settings from flags and ATTAIN_* environment variables, with defaults for the embedded mode."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """A setting that cannot be used; the message names it (and never shows a secret)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTAIN_", extra="ignore")

    # host:port to listen on; port 0 picks a free one (tests).
    listen: str = "127.0.0.1:50051"
    # Folder of the embedded SQLite database (created when missing).
    data_dir: Path = Path("data")
    # SQLAlchemy URL; empty means SQLite in data_dir. PostgreSQL: postgresql+asyncpg://...
    database_url: str = ""
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    # How long a resolved API key is trusted before it is looked up again (revocation delay
    # on other replicas; the replica that revokes forgets at once).
    key_cache_seconds: float = 5.0
    # On SIGTERM/SIGINT the health check says NOT_SERVING at once, and calls are still served
    # for drain_seconds (so a balancer moves traffic away first); then live streams end with
    # UNAVAILABLE and in-flight calls get shutdown_grace_seconds to finish.
    drain_seconds: float = Field(default=5.0, ge=0)
    shutdown_grace_seconds: float = 10.0
    # Live streams (WatchProgress, WatchAwards) one API key, and one brand, may hold open on
    # this server; the next is refused with RESOURCE_EXHAUSTED.
    stream_limit_per_key: int = Field(default=16, ge=1)
    stream_limit_per_brand: int = Field(default=256, ge=1)
    # Seconds a stream's message may wait for the client to read before the stream is ended
    # with UNAVAILABLE (its client is told to reconnect) and everything it held is freed.
    stream_write_timeout_seconds: float = Field(default=10.0, gt=0)
    # Run the worker (cycle clock, SFTP polls) inside `serve` (the embedded default).
    worker: bool = True
    # Seconds between cycle clock ticks; seconds a file must stay unchanged to count as complete.
    worker_clock_seconds: float = 30.0
    worker_settle_seconds: float = 2.0
    # Keys that encrypt the brands' SFTP credentials: base64 of 32 bytes each, comma-separated;
    # the first encrypts, all decrypt (rotation). Or a file holding them. With neither, the
    # embedded default keeps a generated key in data_dir; PostgreSQL stores no credential.
    secrets_key: SecretStr = SecretStr("")
    secrets_key_file: Path | None = None
    # Hosts the worker may pull from: host-name globs (*.sftp.example.com) and networks
    # (10.20.0.0/16), comma-separated. Empty allows any host.
    sftp_allowed_hosts: str = ""
    # host:port of this process's Prometheus /metrics endpoint; empty serves none.
    metrics_listen: str = ""

    @property
    def embedded(self) -> bool:
        """Whether this is the embedded default: SQLite in data_dir, no database URL given."""
        return not self.database_url

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'attain.db').resolve()}"
