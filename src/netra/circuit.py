"""CircuitBreaker: stop calling an instance that keeps failing, then probe it with one call.

closed ──N consecutive failures──► open ──cool-down, or a passing probe──► half_open
  ▲                                  ▲                                        │
  │                                  └─────────────────failure────────────────┤
  └───────────────────────────────────────success─────────────────────────────┘

A probe (a health check of the instance, outside the calls) never closes a circuit itself:
it only ends the cool-down early, so the next real call is the trial that decides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from netra.errors import ConfigurationError

Clock = Callable[[], float]


class CircuitState(StrEnum):
    """Where an instance's circuit breaker stands."""

    CLOSED = "closed"
    """Calls flow; consecutive failures are counted."""
    OPEN = "open"
    """Too many consecutive failures: calls are refused until the cool-down has passed."""
    HALF_OPEN = "half_open"
    """Cooled down: one trial call at a time decides — success closes, failure reopens."""


class CircuitBreaker:
    """Stops sending calls to an instance that keeps failing, then probes it with one call.

    The clock is injectable so tests move time instead of sleeping. A half-open trial whose
    outcome is never reported (its caller was cancelled) is given up after one more cool-down,
    so a lost report cannot shut the instance out for good.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ConfigurationError(
                "a circuit breaker needs failure_threshold >= 1 and reset_timeout_s > 0"
            )
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.openings = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._current(self._clock())

    def _current(self, now: float) -> CircuitState:
        # Open turns half-open lazily, when someone looks: no timer thread to own.
        if self._state is CircuitState.OPEN and now - self._opened_at >= self.reset_timeout_s:
            self._state = CircuitState.HALF_OPEN
            self._trial_started = None
        return self._state

    def allow(self) -> bool:
        """Whether a call may go through now; in half-open, a True reserves the one trial."""
        with self._lock:
            now = self._clock()
            state = self._current(now)
            if state is CircuitState.CLOSED:
                return True
            if state is CircuitState.OPEN:
                return False
            if self._trial_started is not None and now - self._trial_started < self.reset_timeout_s:
                return False
            self._trial_started = now
            return True

    def record_probe_success(self) -> None:
        """A health probe of the instance passed: an open circuit turns half-open at once."""
        with self._lock:
            if self._current(self._clock()) is CircuitState.OPEN:
                self._state = CircuitState.HALF_OPEN
                self._trial_started = None

    def record_success(self) -> None:
        """A call succeeded: closes a half-open circuit; an open one waits out its cool-down."""
        with self._lock:
            if self._current(self._clock()) is not CircuitState.OPEN:
                self._state = CircuitState.CLOSED
                self._failures = 0
                self._trial_started = None

    def record_failure(self) -> None:
        """A call failed: counts toward opening, or reopens a half-open circuit at once."""
        with self._lock:
            now = self._clock()
            state = self._current(now)
            if state is CircuitState.CLOSED:
                self._failures += 1
                if self._failures < self.failure_threshold:
                    return
            elif state is CircuitState.OPEN:
                return  # a straggler that started before the circuit opened
            self._state = CircuitState.OPEN
            self._opened_at = now
            self._failures = 0
            self._trial_started = None
            self.openings += 1
