"""API keys: generation, hashing, resolution to a Principal, and the roles of SPEC section 9."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from attain_server.domain.errors import PermissionDenied
from attain_server.domain.model import Role
from attain_server.store.brands import find_api_key_by_secret_hash
from attain_server.store.engine import Database

KEY_PREFIX = "atn"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from the bearer key before any handler runs."""

    brand: str
    role: Role
    key_id: str
    member_id: str = ""

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise PermissionDenied(
                f"a {self.role.value} key may not do this (needs {allowed})",
                reason="ROLE_NOT_ALLOWED",
            )

    def require_member_access(self, member_id: str) -> None:
        """A member key reads only its own member; other roles of the brand read any member."""
        if self.role is Role.MEMBER and member_id != self.member_id:
            raise PermissionDenied(
                "a member key may only read its own member", reason="OTHER_MEMBER"
            )


# What new_secret makes: the prefix, 16 hex digits of key id, 43 characters of token.
KEY_RE = re.compile(r"atn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def new_secret() -> tuple[str, str]:
    """A fresh (key_id, secret). The secret carries 256 random bits; only its hash is kept."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyResolver:
    """Resolves bearer secrets to principals, trusting a result for ``ttl`` seconds.

    Keys that resolved sit in a bounded LRU cache; keys that did not sit in a smaller one of
    their own, so a flood of made-up keys (each a miss, each a database read) can only evict
    other misses, never a key in use. A secret that is not even shaped like a key is refused
    before it is hashed or looked up."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        max_misses: int = 1_000,
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._known: _Lru[Principal] = _Lru(max_entries)
        self._unknown: _Lru[None] = _Lru(max_misses)

    async def resolve(self, secret: str) -> Principal | None:
        if KEY_RE.fullmatch(secret) is None:
            return None
        digest = hash_secret(secret)
        now = time.monotonic()
        known = self._known.get(digest, now)
        if known is not None:
            return known
        if self._unknown.has(digest, now):
            return None
        async with self._db.read() as session:
            holder = await find_api_key_by_secret_hash(session, secret_hash=digest)
        if holder is None or holder.key.revoke_time is not None:
            self._unknown.put(digest, None, now + self._ttl)
            return None
        key = holder.key
        principal = Principal(holder.brand, key.role, key.key_id, key.member_id)
        self._known.put(digest, principal, now + self._ttl)
        return principal

    def forget(self, key_id: str) -> None:
        """Drops a revoked key from this replica's cache at once."""
        self._known.drop_where(lambda principal: principal.key_id == key_id)


V = TypeVar("V")


class _Lru(Generic[V]):
    """At most ``size`` entries, each until its deadline; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def has(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry[0] <= now:
            del self._entries[key]
            return False
        return True

    def put(self, key: str, value: V, deadline: float) -> None:
        if deadline <= time.monotonic():
            return  # a ttl of 0: nothing to keep
        self._entries[key] = (deadline, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop_where(self, test: Callable[[V], bool]) -> None:
        for key, (_, value) in list(self._entries.items()):
            if test(value):
                del self._entries[key]
