"""Payload sanitising: secrets redacted by key name, long strings and lists truncated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netra.env import is_secret_key

REDACTED = "[redacted]"


def sanitize(value: Any, *, max_string: int, max_items: int, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` with secrets redacted and sizes bounded."""
    if _depth > 20:
        return "…[truncated: nested too deep]"
    if isinstance(value, str):
        if len(value) > max_string:
            return f"{value[:max_string]}…[truncated {len(value) - max_string} chars]"
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if is_secret_key(name) and item not in (None, ""):
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
