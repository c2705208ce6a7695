"""Change signals between replicas on PostgreSQL: NOTIFY at commit, one LISTEN connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import asyncpg
import structlog
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import URL

from . import _runner as runner
from .engine import Database

log = structlog.get_logger("attain.live")

PROGRESS_CHANNEL = "attain_progress"
AWARDS_CHANNEL = "attain_awards"
# NOTIFY payloads are limited to 8,000 bytes.
_MAX_PAYLOAD = 7000


class Signals(Protocol):
    """What a LISTEN connection wakes: a hub of live streams (`application.live.Hub`)."""

    def publish(self, brand: str, member_ids: Iterable[str]) -> None: ...

    def publish_brand(self, brand: str) -> None: ...

    def publish_everywhere(self) -> None: ...


def _shared(s: runner.Conn) -> bool:
    """Whether other replicas may be listening: on SQLite one process holds the database."""
    return runner.engine_of(s).dialect.name == "postgresql"


async def notify(s: runner.Conn, channel: str, brand: str, member_ids: Iterable[str]) -> None:
    """Queues NOTIFYs inside the transaction; they are sent at commit. Nothing on SQLite."""
    if not _shared(s):
        return
    members = sorted(set(member_ids))
    chunk: list[str] = []
    size = 0
    for member in members:
        chunk.append(member)
        size += len(member) + 4
        if size > _MAX_PAYLOAD:
            await _send(s, channel, brand, chunk)
            chunk, size = [], 0
    if chunk:
        await _send(s, channel, brand, chunk)


async def notify_brand(s: runner.Conn, channel: str, brand: str) -> None:
    """PostgreSQL only: wakes every stream of the brand on every replica (at commit, inside a
    transaction; at once on a reader). Nothing on SQLite."""
    if not _shared(s):
        return
    await _send(s, channel, brand, [], everyone=True)


_NOTIFY = runner.Query(lambda: select(func.pg_notify(bindparam("channel"), bindparam("payload"))))


async def _send(
    s: runner.Conn, channel: str, brand: str, members: list[str], *, everyone: bool = False
) -> None:
    data: dict[str, Any] = {"b": brand, "m": members}
    if everyone:
        data["all"] = 1
    payload = json.dumps(data, separators=(",", ":"))
    await _NOTIFY.rows(s, {"channel": channel, "payload": payload})


# Seconds between attempts to reconnect a lost LISTEN connection, doubling up to the last.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)


async def signal_replicas(
    db: Database, channel: str, brand: str, member_ids: Iterable[str] | None = None
) -> None:
    """Tells the other replicas of a committed change (the brand's members, or the whole brand
    when ``member_ids`` is None). Only PostgreSQL has other replicas to tell: on SQLite every
    stream is in this process, and nothing is sent."""
    if db.dialect != "postgresql":
        return
    async with db.reader() as s:
        if member_ids is None:
            await notify_brand(s, channel, brand)
        else:
            await notify(s, channel, brand, member_ids)


def replica_listener(db: Database, hubs: Mapping[str, Signals]) -> PgListener | None:
    """The LISTEN connection that brings other replicas' changes into ``hubs``; None where
    there are no other replicas (SQLite)."""
    return PgListener(db.url, hubs) if db.dialect == "postgresql" else None


class PgListener:
    """One LISTEN connection per process that relays NOTIFYs of any replica into the hubs.

    Streams wait for these signals alone (no polling), so a lost connection is made again,
    and every stream then re-reads once for what it may have missed meanwhile.
    """

    def __init__(self, url: URL, hubs: Mapping[str, Signals]) -> None:
        self._url = url
        self._hubs = hubs
        self._conn: Any = None
        self._stopping = False
        self._reconnecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping = False
        await self._connect()

    async def _connect(self) -> None:
        u = self._url
        conn = await asyncpg.connect(
            host=u.host,
            port=u.port or 5432,
            user=u.username,
            password=u.password,
            database=u.database,
        )
        try:
            for channel in self._hubs:
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            hub, brand = self._hubs[channel], str(data["b"])
            if data.get("all"):
                hub.publish_brand(brand)
            else:
                hub.publish(brand, [str(m) for m in data["m"]])
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignored a malformed change notification", channel=channel)

    def _on_lost(self, _conn: Any) -> None:
        self._conn = None
        if not self._stopping and self._reconnecting is None:
            log.warning("lost the LISTEN connection; reconnecting")
            self._reconnecting = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        try:
            while not self._stopping:
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
                try:
                    await self._connect()
                except Exception as exc:  # whatever it was, streams only wake through this link
                    log.warning(
                        "could not reconnect the LISTEN connection",
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    continue
                log.info("LISTEN connection restored", attempts=attempt)
                for hub in self._hubs.values():
                    hub.publish_everywhere()
                return
        finally:
            self._reconnecting = None

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.remove_termination_listener(self._on_lost)
            await conn.close()
