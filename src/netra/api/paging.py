"""Pages of a list: a bounded ``limit`` and an opaque ``cursor`` for the next page.

A cursor is the position of a page's last item in the list's order, encoded so clients
treat it as a token: they pass back what they were given, never build one. Paging by
position (keyset), not by offset, keeps pages stable while rows arrive: a new item never
pushes an old one onto the next page twice.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import Query

from netra.errors import InvalidRequest

PAGE_MAX = 200
PageLimit = Annotated[
    int, Query(ge=1, le=PAGE_MAX, description=f"Items per page, 1 to {PAGE_MAX}.")
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="The `next_cursor` of the previous page; none for the first page.",
    ),
]


T = TypeVar("T")


def page_of(
    found: Sequence[T], limit: int, position: Callable[[T], tuple[datetime, str]]
) -> tuple[Sequence[T], str | None]:
    """A page from the ``limit + 1`` items read: the first ``limit``, and the cursor of the
    last of them when more follow (None: this is the last page)."""
    page = found[:limit]
    return page, cursor_for(*position(page[-1])) if len(found) > limit else None


def cursor_for(at: datetime, item_id: str) -> str:
    """The cursor of a position: an item's time in the order, and its id for ties."""
    raw = json.dumps([at.isoformat(), item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def key_cursor(*keys: str) -> str:
    """The cursor of a position in a list ordered by text keys (a report's groups)."""
    raw = json.dumps(["keys", *keys], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def keys_of(cursor: str, count: int) -> tuple[str, ...]:
    """The ``count`` keys a ``key_cursor`` holds; any other cursor is a client mistake."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, *keys = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        kind, keys = None, []
    if kind != "keys" or len(keys) != count or not all(isinstance(k, str) for k in keys):
        raise InvalidRequest("cursor is not one this server gave", code="invalid_cursor")
    return tuple(keys)


def position_of(cursor: str) -> tuple[datetime, str]:
    """The position a cursor holds; a cursor this server did not give is a client mistake."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        when = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        when, item_id = None, None
    if when is None or when.tzinfo is None or not isinstance(item_id, str):
        raise InvalidRequest("cursor is not one this server gave", code="invalid_cursor")
    return when, item_id
