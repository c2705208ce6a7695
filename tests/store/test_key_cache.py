"""The key cache holds under a flood of made-up keys, on both databases: a valid key keeps
resolving without a database read, and a key not even shaped like one is never looked up."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from attain_server.application.auth import KeyResolver
from attain_server.application.brands import create_brand, revoke_api_key
from attain_server.domain.model import Role
from attain_server.store.engine import Database
from support import migrated


@contextmanager
def key_reads(db: Database) -> Iterator[list[str]]:
    """Every statement that reads the api_key table while the block runs."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_key" in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)


def made_up_key() -> str:
    """Shaped exactly like a real key, naming none."""
    return f"atn_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


async def _brand_key(db: Database) -> str:
    brand = f"K{uuid.uuid4().hex[:10].upper()}"
    _, _, secret = await create_brand(db=db, code=brand, time_zone="UTC", now=datetime.now(UTC))
    return secret


async def test_twenty_thousand_random_keys_leave_a_valid_key_cached(database_url: str) -> None:
    async with migrated(database_url) as db:
        secret = await _brand_key(db)
        resolver = KeyResolver(db, ttl=600)
        with key_reads(db) as reads:
            who = await resolver.resolve(secret)
            assert who is not None and who.role is Role.BRAND_ADMIN
            assert len(reads) == 1
            for i in range(20_000):  # what a scanner sends: random tokens, some near-keys
                junk = secrets.token_urlsafe(24) if i % 2 else f"atn_{secrets.token_hex(6)}"
                assert await resolver.resolve(junk) is None
            assert len(reads) == 1  # none of them was looked up
            assert await resolver.resolve(secret) == who
            assert len(reads) == 1  # and the valid key is still cached


async def test_made_up_keys_of_the_right_shape_evict_only_each_other(database_url: str) -> None:
    """Each well-shaped made-up key costs one read, and its miss is cached apart from the
    keys that resolved: however many come, a valid key stays."""
    async with migrated(database_url) as db:
        secret = await _brand_key(db)
        resolver = KeyResolver(db, ttl=600, max_entries=50, max_misses=20)
        with key_reads(db) as reads:
            who = await resolver.resolve(secret)
            assert who is not None
            flood = [made_up_key() for _ in range(300)]
            for key in flood:
                assert await resolver.resolve(key) is None
            assert len(reads) == 1 + len(flood)
            assert await resolver.resolve(flood[-1]) is None  # a recent miss is cached
            assert len(reads) == 1 + len(flood)
            assert await resolver.resolve(secret) == who
            assert len(reads) == 1 + len(flood)
        # A revoked key leaves the cache at once.
        now = datetime.now(UTC)
        await revoke_api_key(db=db, brand=who.brand, key_id=who.key_id, now=now)
        resolver.forget(who.key_id)
        assert await resolver.resolve(secret) is None


async def test_a_key_of_the_wrong_shape_is_never_looked_up(database_url: str) -> None:
    async with migrated(database_url) as db:
        resolver = KeyResolver(db, ttl=600)
        with key_reads(db) as reads:
            for secret in (
                "",
                "atn_0000_not-a-real-key",
                "x" * 100_000,
                f"atn_{'0' * 16}_{'x' * 43}\x00",
                f"ATN_{'0' * 16}_{'x' * 43}",
                f"atn_{'g' * 16}_{'x' * 43}",
            ):
                assert await resolver.resolve(secret) is None
            assert reads == []
