"""Opaque page tokens (AIP-158): the last key seen plus a fingerprint of the query's filters."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attain_server.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Positions (stream cursors, offsets, ranks) are 64-bit signed integers in the database.
MAX_POSITION = 2**63 - 1
# A token holds a few short keys; anything much longer was not made here.
MAX_TOKEN_CHARS = 2048
MAX_KEY_PARTS = 4
MAX_KEY_CHARS = 256
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_position(text: str, field: str) -> int:
    """A position a client got from this server (a stream cursor): ASCII digits within
    0..2^63-1, "" meaning the start. `int()` alone would take " 5", "+5", "٣" and numbers
    no column holds."""
    if not text:
        return 0
    if _DIGITS.fullmatch(text) is None or int(text) > MAX_POSITION:
        raise InvalidArgument.one(field, "is not a cursor this server gave (digits 0-9 only)")
    return int(text)


@dataclass(frozen=True, slots=True)
class Page:
    size: int
    after: list[Any] | None  # key of the last row of the previous page
    fingerprint: str

    def key(self, *kinds: type) -> tuple[Any, ...]:
        """The previous page's last key as the parts the query wants (``str`` or ``int``
        each), or refused as a page_token this server did not make for this query."""
        after = self.after or []
        if len(after) != len(kinds) or any(
            type(x) is not k for x, k in zip(after, kinds, strict=True)
        ):
            raise _not_ours()
        return tuple(after)

    def offset(self) -> int:
        """How many items earlier pages held, for lists paged by position (0 on the first)."""
        if not self.after:
            return 0
        (offset,) = self.key(int)
        if offset < 0:
            raise _not_ours()
        return int(offset)


def _not_ours() -> InvalidArgument:
    return InvalidArgument.one("page_token", "is not a token this server issued")


def _fingerprint(filters: dict[str, Any]) -> str:
    raw = json.dumps(filters, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _key_part_ok(part: object) -> bool:
    if type(part) is int:
        return -MAX_POSITION - 1 <= part <= MAX_POSITION  # a BIGINT column holds it
    return type(part) is str and len(part) <= MAX_KEY_CHARS and "\x00" not in part


def read_page(page_size: int, page_token: str, **filters: Any) -> Page:
    """Validates size and token; a token from a query with other filters is refused."""
    if page_size < 0:
        raise InvalidArgument.one("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    fingerprint = _fingerprint(filters)
    if not page_token:
        return Page(size, None, fingerprint)
    if len(page_token) > MAX_TOKEN_CHARS or not page_token.isascii():
        raise _not_ours()
    try:
        data = json.loads(base64.urlsafe_b64decode(page_token.encode()))
        after, token_fp = data["a"], data["f"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # deep nesting: forged
        raise _not_ours() from exc
    if (
        not isinstance(after, list)
        or len(after) > MAX_KEY_PARTS
        or not all(_key_part_ok(part) for part in after)
    ):
        raise _not_ours()
    if token_fp != fingerprint:
        raise InvalidArgument.one(
            "page_token", "belongs to a query with other filters: start again without a token"
        )
    return Page(size, after, fingerprint)


def next_token(page: Page, rows: list[Any], key: list[Any]) -> str:
    """The token for the next page, or "" when ``rows`` (fetched as size + 1) held the last one."""
    return _token(page, key) if len(rows) > page.size else ""


def _token(page: Page, key: list[Any]) -> str:
    raw = json.dumps({"a": key, "f": page.fingerprint}, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode()


def time_then_id_after(page: Page) -> tuple[datetime, str] | None:
    """The (time, id) key a (time, id) ordered list resumes after, or None on the first page;
    a key that is not an aware time and an id is refused as a token this server did not make."""
    if not page.after:
        return None
    when_text, ident = page.key(str, str)
    try:
        when = datetime.fromisoformat(when_text)
    except ValueError:
        raise _not_ours() from None
    if when.tzinfo is None:
        raise _not_ours()
    return when, ident


def time_then_id_token(page: Page, resume: tuple[datetime, str] | None) -> str:
    """The next page's token of a (time, id) ordered list, "" after the last page."""
    return "" if resume is None else _token(page, [resume[0].isoformat(), resume[1]])
