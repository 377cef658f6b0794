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


def sanitize(value: Any, *, max_string: int, max_items: int, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` with secrets redacted and sizes bounded."""
    if _depth > 20:
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
        for key, item in value.items():
            name = str(key)
            if _is_secret(name) and item not in (None, ""):
                out[name] = REDACTED
            else:
                out[name] = sanitize(
                    item, max_string=max_string, max_items=max_items, _depth=_depth + 1
                )
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        kept = [
            sanitize(item, max_string=max_string, max_items=max_items, _depth=_depth + 1)
            for item in items[:max_items]
        ]
        if len(items) > max_items:
            kept.append(f"…[truncated {len(items) - max_items} items]")
        return kept
    return sanitize(str(value), max_string=max_string, max_items=max_items, _depth=_depth)
