"""Identifiers: a short type prefix plus a time-ordered, random, URL-safe body.

The random part makes ids unique, not secret: an id is never a credential (every read is
filtered by its user; tokens and keys come from ``secrets``). So it comes from ``random``,
which reseeds after a fork, and not from the system's entropy: on the hot path every event
gets an id, and ``getrandom`` costs a system call each (several microseconds on a VM)."""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
"""Every two characters, by the 10 bits they encode."""


def _encode(value: int, length: int) -> str:
    """``length`` (even) characters, the last 5 bits last."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(5 * length - 10, -1, -10)])


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 random chars: sortable by creation time."""
    return (
        f"{prefix}_{_encode(time.time_ns() // 1_000_000, 10)}{_encode(random.getrandbits(80), 16)}"
    )
