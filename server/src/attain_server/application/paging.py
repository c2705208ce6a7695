"""Opaque page tokens (AIP-158): the last key seen plus a fingerprint of the query's filters."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from attain_server.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Page:
    size: int
    after: list[Any] | None  # key of the last row of the previous page
    fingerprint: str


def _fingerprint(filters: dict[str, Any]) -> str:
    raw = json.dumps(filters, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def read_page(page_size: int, page_token: str, **filters: Any) -> Page:
    """Validates size and token; a token from a query with other filters is refused."""
    if page_size < 0:
        raise InvalidArgument.one("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    fingerprint = _fingerprint(filters)
    if not page_token:
        return Page(size, None, fingerprint)
    try:
        data = json.loads(base64.urlsafe_b64decode(page_token.encode()))
        after, token_fp = data["a"], data["f"]
        if not isinstance(after, list):
            raise ValueError
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument.one("page_token", "is not a token this server issued") from exc
    if token_fp != fingerprint:
        raise InvalidArgument.one(
            "page_token", "belongs to a query with other filters: start again without a token"
        )
    return Page(size, after, fingerprint)


def next_token(page: Page, rows: list[Any], key: list[Any]) -> str:
    """The token for the next page, or "" when ``rows`` (fetched as size + 1) held the last one."""
    if len(rows) <= page.size:
        return ""
    raw = json.dumps({"a": key, "f": page.fingerprint}, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode()
