"""Work that may race another writer on a unique key runs again on what is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from attain_server.store.errors import Conflict

T = TypeVar("T")

log = structlog.get_logger("attain.retry")

MAX_ATTEMPTS = 5


async def retry_on_conflict(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int = MAX_ATTEMPTS,
    give_up: Callable[[], BaseException] | None = None,
) -> T:
    """Runs ``work`` (one unit of work) until it commits without a conflict.

    Each attempt reads again what the others committed, so a race on a key (two replicas
    writing the same award, hold or checkpoint) ends in one row, never two. After
    ``attempts`` the conflict is raised, or ``give_up()`` when given (an error for the
    caller's client, such as ABORTED with "retry").
    """
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Conflict:
            if attempt == attempts:
                if give_up is None:
                    raise
                raise give_up() from None
            log.info("raced another writer; retrying", work=what, attempt=attempt)
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises
