"""Opaque page tokens (AIP-158): the last key seen plus a fingerprint of the query's filters."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

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


Row = TypeVar("Row")


async def by_time_then_id(
    s: AsyncSession,
    q: SelectOfScalar[Row],
    page: Page,
    time_column: Any,
    id_column: Any,
    *,
    newest_first: bool = False,
) -> tuple[list[Row], str]:
    """One page of `q` in (time, id) order (columns, e.g. `col(Row.create_time)`), resumed
    after the last key of the previous page; returns the rows and the next page's token."""
    if page.after:
        when, ident = datetime.fromisoformat(page.after[0]), page.after[1]
        if newest_first:
            q = q.where((time_column < when) | ((time_column == when) & (id_column < ident)))
        else:
            q = q.where((time_column > when) | ((time_column == when) & (id_column > ident)))
    order = (time_column.desc(), id_column.desc()) if newest_first else (time_column, id_column)
    rows = list((await s.exec(q.order_by(*order).limit(page.size + 1))).all())
    items = rows[: page.size]
    key = (
        [getattr(items[-1], time_column.key).isoformat(), getattr(items[-1], id_column.key)]
        if items
        else []
    )
    return items, next_token(page, rows, key)
