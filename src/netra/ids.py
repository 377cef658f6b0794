"""Identifiers: a short type prefix plus a time-ordered, random, URL-safe body.

The random part makes ids unique, not secret: an id is never a credential (every read is
filtered by its user; tokens and keys come from ``secrets``). So it comes from a Mersenne
Twister seeded from the system's entropy (``_RANDOM``), and not from the entropy itself: on
the hot path every event gets an id, and ``getrandom`` costs a system call each (several
microseconds on a VM)."""

from __future__ import annotations

import os
import random
import time

_RANDOM = random.Random()  # noqa: S311 - unique, not secret (see above)
"""Ids' own generator, not the ``random`` module's shared one: whatever else seeds or draws
from that one (a library calling ``random.seed``, Hypothesis watching it for strategies that
use it) never touches ids, and ids never move it. Seeded from the system's entropy, and
again in a forked child, as the shared one is."""
os.register_at_fork(after_in_child=_RANDOM.seed)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
"""Every two characters, by the 10 bits they encode."""


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 random chars: sortable by creation time.

    Written out ten bits at a time, without a loop: every event gets an id, and a loop with
    a join cost twice as much."""
    t = time.time_ns() // 1_000_000
    r = _RANDOM.getrandbits(80)
    p = _PAIRS
    return (
        f"{prefix}_{p[t >> 40 & 1023]}{p[t >> 30 & 1023]}{p[t >> 20 & 1023]}{p[t >> 10 & 1023]}"
        f"{p[t & 1023]}{p[r >> 70]}{p[r >> 60 & 1023]}{p[r >> 50 & 1023]}{p[r >> 40 & 1023]}"
        f"{p[r >> 30 & 1023]}{p[r >> 20 & 1023]}{p[r >> 10 & 1023]}{p[r & 1023]}"
    )
