"""The live streams open in this process: caps per API key and per brand, and ending them all.

A live stream (WatchProgress, WatchAwards) holds a task, a hub subscription and whatever
waits for its reader until it ends, so one key or one brand could otherwise take the
server's memory and event loop from everybody else. Each process counts its own streams:
the caps bound what one server spends, whatever the number of replicas.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog

from attain_server import heap

log = structlog.get_logger("attain.streams")

# Memory is given back once this many streams have ended since the last time, this many
# seconds after the last of them: a burst that ends is one trim, not one per stream.
TRIM_AFTER_STREAMS = 32
TRIM_DELAY_SECONDS = 2.0


class StreamRefused(Exception):
    """A stream this process will not open now: a cap is reached, or it is shutting down."""

    def __init__(self, message: str, reason: str, *, shutting_down: bool = False) -> None:
        super().__init__(message)
        self.message, self.reason, self.shutting_down = message, reason, shutting_down


@dataclass(eq=False, slots=True)
class OpenStream:
    brand: str
    key_id: str
    task: asyncio.Task[Any] | None
    # Set when the server ended the stream (shutdown): its cancellation is not the client's.
    ended_by_server: bool = False


class LiveStreams:
    """Open streams by key and brand, within `per_key` and `per_brand`; a message that waits
    longer than `write_timeout` seconds for its reader ends its stream (the gate does that)."""

    def __init__(self, *, per_key: int, per_brand: int, write_timeout: float) -> None:
        self.per_key, self.per_brand, self.write_timeout = per_key, per_brand, write_timeout
        self._open: set[OpenStream] = set()
        self._by_key: Counter[str] = Counter()
        self._by_brand: Counter[str] = Counter()
        self._closing = False
        self._ended_since_trim = 0
        self._trim: asyncio.TimerHandle | None = None
        self._trimming: asyncio.Future[bool] | None = None

    @property
    def count(self) -> int:
        return len(self._open)

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks serving the open streams."""
        return [s.task for s in self._open if s.task is not None]

    def open(self, brand: str, key_id: str) -> OpenStream:
        """Counts a new stream of the current task, or raises StreamRefused."""
        if self._closing:
            raise StreamRefused(
                "the server is shutting down: reconnect, and another server will serve you",
                "SERVER_SHUTTING_DOWN",
                shutting_down=True,
            )
        if self._by_key[key_id] >= self.per_key:
            raise StreamRefused(
                f"this API key already has {self.per_key} live streams open on this server, "
                "the most one key may hold: close a stream you no longer read before opening "
                "another",
                "TOO_MANY_STREAMS",
            )
        if self._by_brand[brand] >= self.per_brand:
            raise StreamRefused(
                f"brand {brand} already has {self.per_brand} live streams open on this server, "
                "the most one brand may hold: close streams you no longer read before opening "
                "more",
                "TOO_MANY_STREAMS",
            )
        stream = OpenStream(brand, key_id, asyncio.current_task())
        self._open.add(stream)
        self._by_key[key_id] += 1
        self._by_brand[brand] += 1
        return stream

    def close(self, stream: OpenStream) -> None:
        """Frees the stream's slot (once, however often it is called)."""
        if stream not in self._open:
            return
        self._open.discard(stream)
        for counter, name in ((self._by_key, stream.key_id), (self._by_brand, stream.brand)):
            counter[name] -= 1
            if counter[name] <= 0:
                del counter[name]
        self._ended_since_trim += 1
        if self._ended_since_trim >= TRIM_AFTER_STREAMS and not self._closing:
            self._schedule_trim()

    def end_all(self) -> int:
        """Refuses new streams and cancels the open ones (their gate ends each with
        UNAVAILABLE); returns how many there were."""
        self._closing = True
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        ended = list(self._open)
        for stream in ended:
            stream.ended_by_server = True
            if stream.task is not None:
                stream.task.cancel()
        return len(ended)

    def _schedule_trim(self) -> None:
        if self._trim is not None:
            self._trim.cancel()  # later: wait for the burst to end
        self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY_SECONDS, self._start_trim)

    def _start_trim(self) -> None:
        self._trim = None
        if self._trimming is not None and not self._trimming.done():
            return
        self._ended_since_trim = 0
        # In a thread: a trim of a large heap takes milliseconds the loop need not wait for.
        self._trimming = asyncio.ensure_future(asyncio.to_thread(heap.release_free_memory))
        self._trimming.add_done_callback(_log_trim)


def _log_trim(task: asyncio.Future[bool]) -> None:
    if not task.cancelled() and task.exception() is None:
        log.debug("freed memory returned", released=task.result())
