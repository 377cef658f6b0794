"""LoginThrottle: slows password guessing without locking the real user out.

Failures are counted per (account, client address) and per client address across accounts,
in a sliding window. A guesser is stopped on their own address; the account's owner signing in
from another address is unaffected. The answer is the same for unknown accounts and wrong
passwords, so the throttle reveals nothing about which accounts exist.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from netra.errors import QuotaExceeded

_MAX_KEYS = 100_000


class LoginThrottle:
    def __init__(
        self,
        *,
        per_account: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"account": per_account, "address": per_address}
        self._window = window_s
        self._clock = clock
        self._failures: OrderedDict[tuple[str, ...], deque[float]] = OrderedDict()

    def _keys(self, email: str, address: str) -> dict[str, tuple[str, ...]]:
        return {"account": ("account", email, address), "address": ("address", address)}

    def _recent(self, key: tuple[str, ...], now: float) -> deque[float]:
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - self._window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def check(self, email: str, address: str) -> None:
        """Raise ``QuotaExceeded`` with ``retry_after`` while either counter is exhausted."""
        now = self._clock()
        for kind, key in self._keys(email, address).items():
            stamps = self._recent(key, now)
            if len(stamps) >= self._limits[kind]:
                wait = stamps[0] + self._window - now
                raise QuotaExceeded(
                    "too many failed sign-ins; try again later",
                    retry_after=max(1, math.ceil(wait)),
                )

    def failure(self, email: str, address: str) -> None:
        now = self._clock()
        for key in self._keys(email, address).values():
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > _MAX_KEYS:  # bounded memory under a spray of addresses
            self._failures.popitem(last=False)

    def success(self, email: str, address: str) -> None:
        self._failures.pop(self._keys(email, address)["account"], None)
