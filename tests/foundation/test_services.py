from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from netra.circuit import CircuitBreaker, CircuitState
from netra.errors import Conflict, NetraError, NotFound
from netra.services import ServiceHealth, ServiceRegistry, ServiceUnavailable
from tests.support import eventually


class ManualClock:
    """A clock the test moves by hand, so cool-downs pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


def failing_lease(registry: ServiceRegistry[str]) -> None:
    with registry.lease("model") as instance:
        raise Boom(instance)


def endpoints(
    count: int,
    *,
    failure_threshold: int = 5,
    reset_timeout_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> ServiceRegistry[str]:
    """Instances "a", "b", … of the service "model", whose values are "A", "B", …"""
    registry: ServiceRegistry[str] = ServiceRegistry(
        failure_threshold=failure_threshold, reset_timeout_s=reset_timeout_s, clock=clock
    )
    for name in "abcdefghij"[:count]:
        registry.add("model", name, name.upper())
    return registry


def test_round_robin_gives_five_instances_ten_of_fifty_then_the_three_healthy_ten_of_thirty() -> (
    None
):
    registry = endpoints(5)
    assert Counter(registry.choose("model") for _ in range(50)) == dict.fromkeys("ABCDE", 10)

    registry.mark_unhealthy("model", "b")
    registry.mark_unhealthy("model", "d")
    assert Counter(registry.choose("model") for _ in range(30)) == dict.fromkeys("ACE", 10)

    registry.mark_healthy("model", "b")
    registry.mark_healthy("model", "d")
    assert Counter(registry.choose("model") for _ in range(10)) == dict.fromkeys("ABCDE", 2)
    assert {key: m.choices for key, m in registry.metrics("model").items()} == {
        "a": 22, "b": 12, "c": 22, "d": 12, "e": 22
    }  # fmt: skip


def test_least_loaded_picks_the_instance_with_fewest_open_leases() -> None:
    registry = endpoints(3)
    with (
        registry.lease("model", strategy="least_loaded") as first,
        registry.lease("model", strategy="least_loaded") as second,
    ):
        assert (first, second) == ("A", "B")
        with registry.lease("model", strategy="least_loaded") as third:
            assert third == "C"
        with registry.lease("model", strategy="least_loaded") as fourth:
            # Round robin would say A; but A and B are busy, and C is idle again.
            assert fourth == "C"
    with registry.lease("model", strategy="least_loaded") as busy:
        assert busy == "A"
        # The idle B and C take turns; the busy A is passed over although its turn comes.
        assert registry.choose("model", strategy="least_loaded") == "B"
        assert registry.choose("model", strategy="least_loaded") == "C"
        assert registry.choose("model", strategy="least_loaded") == "B"
        assert registry.metrics("model")["a"].in_flight == 1
    assert all(m.in_flight == 0 for m in registry.metrics("model").values())


async def test_use_counts_in_flight_and_an_exception_inside_is_a_failure_and_is_reraised() -> None:
    registry = endpoints(2, failure_threshold=2)
    async with (
        registry.use("model", strategy="least_loaded") as first,
        registry.use("model", strategy="least_loaded") as second,
    ):
        assert {first, second} == {"A", "B"}
        assert [m.in_flight for m in registry.metrics("model").values()] == [1, 1]

    async def failing_call() -> None:
        async with registry.use("model") as instance:
            raise Boom(instance)

    for _ in range(2):
        with pytest.raises(Boom, match=r"^A$"):
            await failing_call()
        assert registry.choose("model") == "B"  # so that A's turn comes round again

    a = registry.metrics("model")["a"]
    assert (a.failures, a.circuit, a.circuit_openings, a.in_flight) == (2, "open", 1, 0)
    assert registry.metrics("model")["b"].failures == 0


async def test_cancelled_use_frees_the_lease_without_counting_a_failure() -> None:
    registry = endpoints(1, failure_threshold=1)
    entered = asyncio.Event()

    async def call() -> None:
        async with registry.use("model"):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(call())
    await entered.wait()
    assert registry.metrics("model")["a"].in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    a = registry.metrics("model")["a"]
    assert (a.in_flight, a.failures, a.circuit) == (0, 0, CircuitState.CLOSED)


async def test_health_checks_that_fail_raise_or_hang_mark_their_instances_unhealthy() -> None:
    registry: ServiceRegistry[str] = ServiceRegistry(health_timeout_s=0.05)

    async def passes(_: str) -> bool:
        return True

    async def fails(_: str) -> bool:
        return False

    async def raises(_: str) -> bool:
        raise ConnectionError("refused")

    async def hangs(_: str) -> bool:
        await asyncio.sleep(3600)
        return True

    registry.add("model", "ok", "OK", health_check=passes)
    registry.add("model", "false", "FALSE", health_check=fails)
    registry.add("model", "raises", "RAISES", health_check=raises)
    registry.add("model", "hangs", "HANGS", health_check=hangs)
    registry.add("model", "unchecked", "UNCHECKED")
    registry.add("embed", "slow", "SLOW", health_check=hangs)
    registry.mark_unhealthy("model", "ok")  # a passing check brings it back

    started = time.monotonic()
    verdicts = await registry.check_health("model")
    assert time.monotonic() - started < 1.0  # timed out, not waited out

    assert verdicts == {"model": {"false": False, "hangs": False, "ok": True, "raises": False}}
    assert Counter(registry.choose("model") for _ in range(4)) == {"OK": 2, "UNCHECKED": 2}
    assert registry.health()["embed"].healthy == 1  # not checked: only "model" was asked

    assert (await registry.check_health())["embed"] == {"slow": False}
    assert registry.health()["embed"].unhealthy == 1


def test_circuit_opens_after_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=ManualClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # consecutive: a success starts the count again
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    assert breaker.openings == 1


def test_open_circuit_turns_half_open_after_the_cool_down_and_a_successful_trial_closes_it() -> (
    None
):
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10, clock=clock)
    breaker.record_failure()
    clock.advance(9.9)
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    breaker.record_success()  # a straggler from before the opening does not cut the cool-down
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # one trial at a time
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert all(breaker.allow() for _ in range(3))


def test_failed_half_open_trial_reopens_the_circuit_for_a_full_cool_down() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is CircuitState.OPEN and breaker.openings == 2
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN


def test_half_open_trial_never_reported_is_given_up_after_another_cool_down() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    assert breaker.state is CircuitState.HALF_OPEN


def test_choose_skips_an_open_circuit_and_lets_one_trial_through_after_the_cool_down() -> None:
    clock = ManualClock()
    registry = endpoints(3, failure_threshold=1, reset_timeout_s=10, clock=clock)
    assert registry.choose("model") == "A"
    with pytest.raises(Boom, match=r"^B$"):
        failing_lease(registry)
    assert registry.health()["model"].open_circuits == 1
    assert [registry.choose("model") for _ in range(6)] == ["C", "A", "C", "A", "C", "A"]

    clock.advance(10)
    assert [registry.choose("model") for _ in range(5)] == ["B", "C", "A", "C", "A"]
    registry.report("model", "b", ok=True)
    assert [registry.choose("model") for _ in range(3)] == ["B", "C", "A"]
    b = registry.metrics("model")["b"]
    assert (b.circuit, b.choices, b.failures, b.circuit_openings) == ("closed", 3, 1, 1)


def test_a_passing_probe_ends_an_open_circuits_cool_down_and_the_next_call_decides() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10, clock=clock)
    breaker.record_probe_success()
    assert breaker.state is CircuitState.CLOSED  # nothing to end
    breaker.record_failure()
    breaker.record_probe_success()
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # still one trial at a time
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and breaker.openings == 2
    breaker.record_probe_success()
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_acquire_skips_the_excluded_and_release_feeds_the_breaker_and_keeps_the_last_error() -> (
    None
):
    registry = endpoints(3, failure_threshold=1)
    first = registry.acquire("model", strategy="least_loaded")
    second = registry.acquire("model", strategy="least_loaded", exclude={"c"})
    assert (first.instance_id, second.instance_id) == ("a", "b")
    third = registry.acquire("model", strategy="least_loaded", exclude={"c"})
    assert third.instance_id == "a"  # both busy: the rotation goes on among the allowed
    assert {k: m.in_flight for k, m in registry.metrics("model").items()} == {
        "a": 2, "b": 1, "c": 0
    }  # fmt: skip

    registry.release(first, ok=True)
    registry.release(third, ok=None, error="cancelled")  # abandoned: not held against it
    registry.release(second, ok=False, error="b answered HTTP 502")
    metrics = registry.metrics("model")
    assert {k: m.in_flight for k, m in metrics.items()} == dict.fromkeys("abc", 0)
    assert (metrics["a"].circuit, metrics["a"].failures) == (CircuitState.CLOSED, 0)
    assert metrics["a"].last_error == "cancelled"
    assert (metrics["b"].circuit, metrics["b"].last_error) == (
        CircuitState.OPEN, "b answered HTTP 502"
    )  # fmt: skip
    with pytest.raises(ServiceUnavailable, match="3 registered, 2 excluded, 0 unhealthy, 1 held"):
        registry.acquire("model", exclude={"a", "c"})


async def test_health_checks_record_why_they_failed_and_a_pass_ends_the_cool_down() -> None:
    verdict: dict[str, bool | Exception] = {"a": True, "b": True}

    async def check(instance: str) -> bool:
        outcome = verdict[instance.lower()]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    registry: ServiceRegistry[str] = ServiceRegistry(failure_threshold=1, reset_timeout_s=3600)
    registry.add("model", "a", "A", health_check=check)
    registry.add("model", "b", "B", health_check=check)
    registry.report("model", "a", ok=False)
    verdict["b"] = NetraError("b is out")
    assert await registry.check_health("model") == {"model": {"a": True, "b": False}}
    metrics = registry.metrics("model")
    assert (metrics["a"].circuit, metrics["a"].healthy) == (CircuitState.HALF_OPEN, True)
    assert (metrics["b"].healthy, metrics["b"].last_error) == (
        False, "health check failed: b is out"
    )  # fmt: skip

    verdict["b"] = ConnectionError("refused")  # not Netra's: only its kind is shown
    await registry.check_health("model")
    assert registry.metrics("model")["b"].last_error == "health check failed: ConnectionError"


async def test_watch_checks_health_again_and_again_until_cancelled() -> None:
    checks = 0

    async def check(_: str) -> bool:
        nonlocal checks
        checks += 1
        return checks < 3  # the third check finds the instance down

    registry: ServiceRegistry[str] = ServiceRegistry()
    registry.add("model", "a", "A", health_check=check)
    task = asyncio.create_task(registry.watch("model", every_s=0.001))
    await eventually(lambda: not registry.metrics("model")["a"].healthy, "the third check")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checks >= 3


def test_service_unavailable_when_no_instance_is_healthy_with_a_closed_circuit() -> None:
    registry = endpoints(3, failure_threshold=1)
    registry.mark_unhealthy("model", "a")
    registry.mark_unhealthy("model", "b")
    registry.report("model", "c", ok=False)
    with pytest.raises(ServiceUnavailable, match="3 registered, 2 unhealthy, 1 held") as caught:
        registry.choose("model")
    assert isinstance(caught.value, NetraError)
    assert (caught.value.code, caught.value.status, caught.value.service) == (
        "service_unavailable", 503, "model"
    )  # fmt: skip
    with pytest.raises(ServiceUnavailable), registry.lease("model"):
        pass
    with pytest.raises(ServiceUnavailable, match="no instance of 'chat'"):
        registry.choose("chat")
    assert registry.health() == {
        "model": ServiceHealth(instances=3, healthy=1, unhealthy=2, open_circuits=1)
    }


def test_instances_live_in_a_universal_registry_with_its_duplicates_tags_and_removal() -> None:
    registry = endpoints(2)
    registry.add("model", "c", "C", tags=("gpu",))
    with pytest.raises(Conflict):
        registry.add("model", "a", "A2")
    assert registry.instances("model") == ["A", "B", "C"]
    assert registry.instances("model", tag="gpu") == ["C"]
    assert registry.instances("chat") == []

    registry.remove("model", "b")
    assert Counter(registry.choose("model") for _ in range(4)) == {"A": 2, "C": 2}
    with pytest.raises(NotFound):
        registry.remove("model", "b")
    with pytest.raises(NotFound):
        registry.mark_unhealthy("chat", "a")
    registry.remove("model", "a")
    registry.remove("model", "c")
    assert registry.health() == {}


def test_twenty_threads_of_twenty_five_calls_keep_exact_counts() -> None:
    registry = endpoints(5, failure_threshold=1000)
    barrier = threading.Barrier(20)

    def work() -> None:
        barrier.wait()
        for i in range(25):
            if i % 2:
                instance = registry.choose("model")
                registry.report("model", instance.lower(), ok=True)
                continue
            try:
                with registry.lease("model", strategy="round_robin"):
                    if i % 4 == 0:
                        raise Boom
            except Boom:
                pass

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    metrics = registry.metrics("model")
    assert [m.choices for m in metrics.values()] == [100] * 5  # rotation is exact under threads
    assert sum(m.failures for m in metrics.values()) == 20 * 7  # i in 0, 4, …, 24
    assert all(m.in_flight == 0 and m.circuit is CircuitState.CLOSED for m in metrics.values())


def test_twenty_threads_of_twenty_five_failures_open_the_circuit_exactly_once() -> None:
    breaker = CircuitBreaker(failure_threshold=500, reset_timeout_s=10, clock=ManualClock())

    def work() -> None:
        for _ in range(25):
            assert breaker.allow()
            breaker.record_failure()

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.state is CircuitState.OPEN and breaker.openings == 1
