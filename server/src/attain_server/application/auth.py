"""API keys: generation, hashing, resolution to a Principal, and the roles of SPEC section 9."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlmodel import select

from attain_server.domain.errors import PermissionDenied
from attain_server.domain.model import Role
from attain_server.store.engine import Database
from attain_server.store.tables import ApiKeyRow

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


def new_secret() -> tuple[str, str]:
    """A fresh (key_id, secret). The secret carries 256 random bits; only its hash is kept."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyResolver:
    """Resolves bearer secrets to principals, trusting a result for ``ttl`` seconds."""

    def __init__(self, db: Database, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._db = db
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, secret: str) -> Principal | None:
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self._db.read() as session:
            row = (
                await session.exec(select(ApiKeyRow).where(ApiKeyRow.secret_hash == digest))
            ).first()
        principal = None
        if row is not None and row.revoke_time is None:
            principal = Principal(row.brand_code, Role(row.role), row.key_id, row.member_id)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, principal)
        return principal

    def forget(self, key_id: str) -> None:
        """Drops a revoked key from this replica's cache at once."""
        for digest, (_, principal) in list(self._cache.items()):
            if principal is not None and principal.key_id == key_id:
                del self._cache[digest]
