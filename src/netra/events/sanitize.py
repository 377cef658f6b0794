"""Payload sanitising: secrets redacted by key name, long strings and lists truncated."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from netra.env import is_secret_key

REDACTED = "[redacted]"
_is_secret = lru_cache(maxsize=4096)(is_secret_key)
"""Payloads repeat their keys: each is judged once."""
_SCALARS = frozenset({bool, int, float})


def sanitize(value: Any, *, max_string: int, max_items: int) -> Any:
    """A JSON-safe copy of ``value`` with secrets redacted and sizes bounded."""
    return _clean(value, max_string, max_items, 0)


_MAX_DEPTH = 20


def _clean(value: Any, max_string: int, max_items: int, depth: int) -> Any:
    """``sanitize`` at ``depth``: positional arguments, and a dict's short strings kept in
    place — every event's payload passes here, most of it such strings."""
    if depth > _MAX_DEPTH:
        return "…[truncated: nested too deep]"
    kind = type(value)  # the exact types first: most values are, and a check is cheaper
    if kind is str or isinstance(value, str):
        if len(value) > max_string:
            return f"{value[:max_string]}…[truncated {len(value) - max_string} chars]"
        return value
    if value is None or kind in _SCALARS or isinstance(value, bool | int | float):
        return value
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        inline = depth < _MAX_DEPTH
        for key, item in value.items():
            name = key if type(key) is str else str(key)
            if _is_secret(name) and item not in (None, ""):
                out[name] = REDACTED
            elif inline and type(item) is str and len(item) <= max_string:
                out[name] = item
            else:
                out[name] = _clean(item, max_string, max_items, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        kept = [_clean(item, max_string, max_items, depth + 1) for item in items[:max_items]]
        if len(items) > max_items:
            kept.append(f"…[truncated {len(items) - max_items} items]")
        return kept
    return _clean(str(value), max_string, max_items, depth)
