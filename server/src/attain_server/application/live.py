"""Change signals for live streams: in-process events, fed on PostgreSQL by LISTEN/NOTIFY too
(`store.notify` sends and listens).

A signal carries no data: a woken stream re-reads the database, so a slow client only ever
gets the newest state (nothing queues up per client) and a write on any replica wakes the
streams of every replica. Between signals a stream reads nothing: it sleeps until the
signal, or until the instant at which what it sent changes by time alone (decision 0021).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from attain_server.domain.periods import CycleWindow, local_midnight


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
