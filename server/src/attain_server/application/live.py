"""Change signals for live streams: in-process events, fed on PostgreSQL by LISTEN/NOTIFY too.

A signal carries no data: a woken stream re-reads the database, so a slow client only ever
gets the newest state (nothing queues up per client) and a write on any replica wakes the
streams of every replica. Between signals a stream reads nothing: it sleeps until the
signal, or until the instant at which what it sent changes by time alone (decision 0021).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import URL

from attain_server.domain.periods import CycleWindow, local_midnight
from attain_server.store import bulk

log = structlog.get_logger("attain.live")

PROGRESS_CHANNEL = "attain_progress"
AWARDS_CHANNEL = "attain_awards"
# NOTIFY payloads are limited to 8,000 bytes.
_MAX_PAYLOAD = 7000


class Hub:
    """Subscriptions by (brand, member); publishing sets the subscribers' events.

    A subscription with member "" follows the whole brand. A hub may pass everything it
    publishes on to another (`forward_to`): a change of awards is a change of progress too,
    as a progress view lists the cycle's awards.
    """

    def __init__(self) -> None:
        self._brands: dict[str, dict[str, set[asyncio.Event]]] = {}
        self._forward: Hub | None = None

    def forward_to(self, other: Hub) -> None:
        self._forward = other

    def subscribe(self, brand: str, member_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._brands.setdefault(brand, {}).setdefault(member_id, set()).add(event)
        return event

    def unsubscribe(self, brand: str, member_id: str, event: asyncio.Event) -> None:
        members = self._brands.get(brand)
        subs = members.get(member_id) if members is not None else None
        if members is None or subs is None or event not in subs:
            return
        subs.discard(event)
        if not subs:
            del members[member_id]
            if not members:
                del self._brands[brand]

    def watched(self, brand: str) -> bool:
        """Whether anything follows the brand or one of its members here."""
        return brand in self._brands

    def publish(self, brand: str, member_ids: Iterable[str]) -> None:
        wake = {*member_ids, ""}
        members = self._brands.get(brand)
        if members is not None:
            for member_id in wake:
                for event in members.get(member_id, ()):
                    event.set()
        if self._forward is not None:
            self._forward.publish(brand, wake)

    def publish_brand(self, brand: str) -> None:
        """Wakes every subscription of the brand (a change that may touch any member)."""
        for subs in self._brands.get(brand, {}).values():
            for event in subs:
                event.set()
        if self._forward is not None:
            self._forward.publish_brand(brand)

    def publish_everywhere(self) -> None:
        """Wakes every subscription (signals may have been lost: each re-reads once)."""
        for brand in list(self._brands):
            self.publish_brand(brand)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for members in self._brands.values() for s in members.values())


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


async def notify_brand(s: bulk.Conn, channel: str, brand: str) -> None:
    """PostgreSQL only: wakes every stream of the brand on every replica (at commit, inside a
    transaction; at once on a reader)."""
    await _send(s, channel, brand, [], everyone=True)


async def _send(
    s: bulk.Conn, channel: str, brand: str, members: list[str], *, everyone: bool = False
) -> None:
    data: dict[str, Any] = {"b": brand, "m": members}
    if everyone:
        data["all"] = 1
    await bulk.fetch(
        s,
        "pg_notify",
        lambda: select(func.pg_notify(bindparam("channel"), bindparam("payload"))),
        {"channel": channel, "payload": json.dumps(data, separators=(",", ":"))},
    )


# Seconds between attempts to reconnect a lost LISTEN connection, doubling up to the last.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)


class PgListener:
    """One LISTEN connection per process that relays NOTIFYs of any replica into the hubs.

    Streams wait for these signals alone (no polling), so a lost connection is made again,
    and every stream then re-reads once for what it may have missed meanwhile.
    """

    def __init__(self, url: URL, hubs: dict[str, Hub]) -> None:
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


# ---------------------------------------------------------------- waking by time


# Longest single sleep towards a wake-up instant: the clock is looked at again after it, so
# a clock that jumps (or a test's clock that is moved) is noticed without reading anything.
MAX_SLEEP_SECONDS = 60.0


def next_change(window: CycleWindow, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The first instant after `now` at which a view of `window` changes by time alone: its
    state (scheduled, open, grace, closed) or, while open, its days left (at each local
    midnight); None once it is closed."""
    if now < window.start_time:
        return window.start_time
    if now < window.end_time:
        day = now.astimezone(zone).date() + timedelta(days=1)
        midnight = local_midnight(day, zone)
        while midnight <= now:  # a fall-back across midnight repeats a local date
            day += timedelta(days=1)
            midnight = local_midnight(day, zone)
        return min(midnight, window.end_time)
    if now < window.grace_end_time:
        return window.grace_end_time
    return None


async def wait_for_change(
    signal: asyncio.Event, wake_at: datetime | None, now: Callable[[], datetime]
) -> None:
    """Returns once `signal` is set or the clock `now` reaches `wake_at` (None: the signal
    alone), reading nothing meanwhile."""
    while True:
        if wake_at is None:
            await signal.wait()
            return
        left = (wake_at - now()).total_seconds()
        if left <= 0:
            return
        try:
            async with asyncio.timeout(min(left, MAX_SLEEP_SECONDS)):
                await signal.wait()
            return
        except TimeoutError:
            continue
