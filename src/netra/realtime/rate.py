"""A token bucket: how many client frames one socket may send, and how fast."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """``burst`` frames at once, then ``rate`` per second. Not thread-safe (one socket's
    frames are read by one task)."""

    __slots__ = ("_at", "_clock", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def retry_after(self) -> int:
        """Whole seconds until the next token."""
        return max(1, math.ceil((1 - self._tokens) / self.rate))
