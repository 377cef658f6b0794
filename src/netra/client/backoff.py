"""How long to wait before the next attempt to reach the server."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in
    ``[0, min(cap, base·2ⁿ)]``, so many clients cut off together do not come back together,
    and no wait is longer than ``cap``. ``reset`` after a success."""

    def __init__(self, base: float = 0.1, cap: float = 5.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._attempt = 0

    def next_delay(self) -> float:
        delay = self._rng.uniform(0, min(self.cap, self.base * 2**self._attempt))
        self._attempt = min(self._attempt + 1, 30)
        return delay

    def reset(self) -> None:
        self._attempt = 0
