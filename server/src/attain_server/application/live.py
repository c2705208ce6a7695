"""Change signals for live streams: in-process events, fed on PostgreSQL by LISTEN/NOTIFY too.

A signal carries no data: a woken stream re-reads the database, so a slow client only ever
gets the newest state (nothing queues up per client) and a write on any replica wakes the
streams of every replica.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import asyncpg
import structlog
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import URL

from attain_server.store import bulk

log = structlog.get_logger("attain.live")

PROGRESS_CHANNEL = "attain_progress"
AWARDS_CHANNEL = "attain_awards"
# NOTIFY payloads are limited to 8,000 bytes.
_MAX_PAYLOAD = 7000


class Hub:
    """Subscriptions by (brand, member); publishing sets the subscribers' events.

    A subscription with member "" follows the whole brand.
    """

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], set[asyncio.Event]] = {}
        # Subscriptions per brand: a write of a brand nobody watches signals nothing.
        self._per_brand: dict[str, int] = {}

    def subscribe(self, brand: str, member_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._subs.setdefault((brand, member_id), set()).add(event)
        self._per_brand[brand] = self._per_brand.get(brand, 0) + 1
        return event

    def unsubscribe(self, brand: str, member_id: str, event: asyncio.Event) -> None:
        subs = self._subs.get((brand, member_id))
        if subs is not None and event in subs:
            subs.discard(event)
            if not subs:
                del self._subs[(brand, member_id)]
            left = self._per_brand[brand] - 1
            if left:
                self._per_brand[brand] = left
            else:
                del self._per_brand[brand]

    def watched(self, brand: str) -> bool:
        """Whether anything follows the brand or one of its members here."""
        return brand in self._per_brand

    def publish(self, brand: str, member_ids: Iterable[str]) -> None:
        for member_id in {*member_ids, ""}:
            for event in self._subs.get((brand, member_id), ()):
                event.set()

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())


async def notify(s: bulk.Conn, channel: str, brand: str, member_ids: Iterable[str]) -> None:
    """PostgreSQL only: queues NOTIFYs inside the transaction; they are sent at commit."""
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


async def _send(s: bulk.Conn, channel: str, brand: str, members: list[str]) -> None:
    payload = json.dumps({"b": brand, "m": members}, separators=(",", ":"))
    await bulk.fetch(
        s,
        "pg_notify",
        lambda: select(func.pg_notify(bindparam("channel"), bindparam("payload"))),
        {"channel": channel, "payload": payload},
    )


class PgListener:
    """One LISTEN connection per process that relays NOTIFYs of any replica into the hubs."""

    def __init__(self, url: URL, hubs: dict[str, Hub]) -> None:
        self._url = url
        self._hubs = hubs
        self._conn: Any = None

    async def start(self) -> None:
        u = self._url
        self._conn = await asyncpg.connect(
            host=u.host,
            port=u.port or 5432,
            user=u.username,
            password=u.password,
            database=u.database,
        )
        for channel in self._hubs:
            await self._conn.add_listener(channel, self._on_notify)

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            self._hubs[channel].publish(str(data["b"]), [str(m) for m in data["m"]])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed progress notification")

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
