from __future__ import annotations

import pytest

from netra.auth.throttle import LoginThrottle
from netra.errors import QuotaExceeded


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_expire_after_the_window_and_success_clears_the_pair() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_account=2, per_address=5, window_s=60, clock=clock)
    throttle.failure("a@x.org", "1.1.1.1")
    throttle.failure("a@x.org", "1.1.1.1")
    with pytest.raises(QuotaExceeded) as blocked:
        throttle.check("a@x.org", "1.1.1.1")
    assert blocked.value.retry_after == 60
    throttle.check("a@x.org", "2.2.2.2")  # the owner elsewhere is not locked out
    clock.now += 61
    throttle.check("a@x.org", "1.1.1.1")
    throttle.failure("a@x.org", "1.1.1.1")
    throttle.success("a@x.org", "1.1.1.1")
    throttle.failure("a@x.org", "1.1.1.1")
    throttle.check("a@x.org", "1.1.1.1")


def test_one_address_spraying_many_accounts_is_stopped() -> None:
    throttle = LoginThrottle(per_account=5, per_address=3, window_s=60, clock=Clock())
    for index in range(3):
        throttle.failure(f"user{index}@x.org", "9.9.9.9")
    with pytest.raises(QuotaExceeded):
        throttle.check("another@x.org", "9.9.9.9")
