"""ServiceRegistry[T]: interchangeable instances of a service, chosen by health and by circuit.

A service (say ``"model:gpt"``) has several instances — endpoints that can each answer the
same call. Each service's instances live in a ``UniversalRegistry`` keyed by instance id, so
duplicates, tags and removal behave as everywhere else. On top of that, each instance carries:

- a *health* flag, set by ``mark_healthy``/``mark_unhealthy`` or by its async health check
  (``check_health`` now, ``watch`` every few seconds); a passing check also ends an open
  circuit's cool-down early, so the next call is its trial;
- a ``CircuitBreaker`` fed by the outcomes of real calls, so an instance that keeps failing
  stops receiving traffic before any health check notices;
- an in-flight count of open leases, which ``least_loaded`` balances on;
- its last error: why its latest failed call or health check failed.

    async with services.use("model:gpt") as endpoint:
        reply = await endpoint.complete(prompt)   # an exception here counts against it

A caller that decides itself what counts as a failure (say, only some errors, or a stream
that may be abandoned half-way) takes a ``Lease`` with ``acquire`` and ends it with
``release``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, Literal, TypeVar, get_args

from netra.circuit import CircuitBreaker, CircuitState, Clock
from netra.errors import InvalidRequest, NetraError, NotFound
from netra.registry import UniversalRegistry

T = TypeVar("T")
HealthCheck = Callable[[T], Awaitable[bool]]
Strategy = Literal["round_robin", "least_loaded"]
_STRATEGIES: frozenset[str] = frozenset(get_args(Strategy))


class ServiceUnavailable(NetraError):
    """Raised when a service has no instance that is healthy and whose circuit allows a call.

    Nobody's request was wrong: the upstream is down or unregistered, so it maps to 503.
    """

    code = "service_unavailable"
    status = 503

    def __init__(self, message: str, *, service: str, unhealthy: int = 0) -> None:
        super().__init__(message)
        self.service = service
        self.unhealthy = unhealthy
        """Instances left out because their health flag is down (the rest: circuit, or
        excluded by the caller)."""


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    instances: int
    healthy: int
    """Instances whose last health check or mark said healthy, whatever their circuit."""
    unhealthy: int
    open_circuits: int
    """Instances refusing calls until their cool-down ends (half-open ones are not counted)."""


@dataclass(frozen=True, slots=True)
class InstanceMetrics:
    healthy: bool
    circuit: CircuitState
    in_flight: int
    choices: int
    """Times the instance was chosen, by ``choose`` or by a lease."""
    failures: int
    """Failed calls, as reported by leases or ``report``."""
    circuit_openings: int
    last_error: str | None
    """Why its latest failed call or health check failed (kept once it recovers); None:
    nothing failed yet."""


@dataclass(slots=True, eq=False)
class _Instance(Generic[T]):
    instance: T
    health_check: HealthCheck[T] | None
    breaker: CircuitBreaker
    healthy: bool = True
    in_flight: int = 0
    choices: int = 0
    failures: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Lease(Generic[T]):
    """One instance handed out by ``acquire``, counted in flight until ``release``."""

    service: str
    instance_id: str
    instance: T
    _record: _Instance[T] = field(repr=False)


class ServiceRegistry(Generic[T]):
    """Instances of named services; hands out one that is healthy and whose circuit is closed."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        health_timeout_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._new_breaker = partial(
            CircuitBreaker,
            failure_threshold=failure_threshold,
            reset_timeout_s=reset_timeout_s,
            clock=clock,
        )
        self._new_breaker()  # bad settings fail here, not at the first add()
        self._health_timeout_s = health_timeout_s
        self._services: dict[str, UniversalRegistry[_Instance[T]]] = {}
        self._last_choice: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(
        self,
        service: str,
        instance_id: str,
        instance: T,
        *,
        health_check: HealthCheck[T] | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Registers an instance, healthy and with a closed circuit until told otherwise."""
        breaker = self._new_breaker()
        with self._lock:
            registry = self._services.get(service)
            if registry is None:
                if not service:
                    raise InvalidRequest("service name must be a non-empty string")
                registry = UniversalRegistry(f"{service} instance")
            registry.register(instance_id, _Instance(instance, health_check, breaker), tags=tags)
            self._services[service] = registry

    def remove(self, service: str, instance_id: str) -> None:
        """Unregisters an instance; leases already held on it still end cleanly."""
        with self._lock:
            registry = self._registry(service)
            registry.remove(instance_id)
            if not len(registry):  # forget empty services so names do not pile up
                del self._services[service]
                self._last_choice.pop(service, None)

    def instances(self, service: str, *, tag: str | None = None) -> list[T]:
        """Every instance of the service (optionally with a tag), by id, whatever its health."""
        with self._lock:
            registry = self._services.get(service)
            if registry is None:
                return []
            wanted = None if tag is None else set(registry.list_by_tag(tag))
            return [r.instance for k, r in registry.items() if wanted is None or k in wanted]

    def mark_healthy(self, service: str, instance_id: str) -> None:
        with self._lock:
            self._registry(service).get(instance_id).healthy = True

    def mark_unhealthy(self, service: str, instance_id: str) -> None:
        with self._lock:
            self._registry(service).get(instance_id).healthy = False

    async def check_health(self, service: str | None = None) -> dict[str, dict[str, bool]]:
        """Runs the health checks side by side and records their verdicts.

        A check that raises or outlives ``health_timeout_s`` counts as unhealthy: a hung
        endpoint must not hang the checker. Instances without a check keep their flag.
        """
        with self._lock:
            names = sorted(self._services) if service is None else [service]
            targets = [
                (name, key, record)
                for name in names
                if name in self._services
                for key, record in self._services[name].items()
                if record.health_check is not None
            ]
        async with asyncio.TaskGroup() as group:
            probes = [group.create_task(self._probe(record)) for _, _, record in targets]
        verdicts: dict[str, dict[str, bool]] = {}
        with self._lock:
            for (name, key, record), probe in zip(targets, probes, strict=True):
                error = probe.result()
                record.healthy = error is None
                if error is None:
                    record.breaker.record_probe_success()
                else:
                    record.last_error = error
                verdicts.setdefault(name, {})[key] = record.healthy
        return verdicts

    async def watch(self, service: str, every_s: float) -> None:
        """Checks the service's health now and every ``every_s`` seconds until cancelled: a
        task for its caller to own."""
        while True:
            await self.check_health(service)
            await asyncio.sleep(every_s)

    async def _probe(self, record: _Instance[T]) -> str | None:
        """Why the instance's health check failed; None when it passed."""
        assert record.health_check is not None
        try:
            async with asyncio.timeout(self._health_timeout_s):
                passed = bool(await record.health_check(record.instance))
        except TimeoutError:
            return f"health check timed out after {self._health_timeout_s:g} s"
        except NetraError as exc:
            return f"health check failed: {exc.message}"
        except Exception as exc:
            return f"health check failed: {type(exc).__name__}"
        return None if passed else "health check failed"

    def health(self) -> dict[str, ServiceHealth]:
        with self._lock:
            summary = {}
            for name, registry in sorted(self._services.items()):
                records = [record for _, record in registry.items()]
                healthy = sum(record.healthy for record in records)
                summary[name] = ServiceHealth(
                    instances=len(records),
                    healthy=healthy,
                    unhealthy=len(records) - healthy,
                    open_circuits=sum(r.breaker.state is CircuitState.OPEN for r in records),
                )
            return summary

    def metrics(self, service: str) -> dict[str, InstanceMetrics]:
        with self._lock:
            registry = self._services.get(service)
            return {
                key: InstanceMetrics(
                    healthy=r.healthy,
                    circuit=r.breaker.state,
                    in_flight=r.in_flight,
                    choices=r.choices,
                    failures=r.failures,
                    circuit_openings=r.breaker.openings,
                    last_error=r.last_error,
                )
                for key, r in (registry.items() if registry else [])
            }

    def choose(self, service: str, strategy: Strategy = "round_robin") -> T:
        """An instance able to take a call now.

        Report how the call went with ``report`` (a half-open circuit keeps its one trial for
        this caller until then), or let ``lease``/``use`` do it.
        """
        with self._lock:
            return self._choose(service, strategy)[1].instance

    def report(self, service: str, instance_id: str, *, ok: bool) -> None:
        """Feeds the outcome of a call made on a ``choose``n instance to its circuit breaker."""
        with self._lock:
            record = self._registry(service).get(instance_id)
        self._settle(record, ok)

    def acquire(
        self, service: str, *, strategy: Strategy = "round_robin", exclude: Collection[str] = ()
    ) -> Lease[T]:
        """An instance able to take a call now (none of ``exclude``), counted in flight until
        ``release``; ``ServiceUnavailable`` when there is none."""
        with self._lock:
            key, record = self._choose(service, strategy, exclude)
            record.in_flight += 1
        return Lease(service, key, record.instance, record)

    def release(self, lease: Lease[T], *, ok: bool | None, error: str | None = None) -> None:
        """Ends a lease: once, whatever happened (``try``/``finally``). ``ok`` goes to the
        circuit breaker — None says the call was abandoned (cancelled), which tells nothing
        about the instance; ``error`` becomes its last error."""
        record = lease._record
        with self._lock:
            record.in_flight -= 1
            if error is not None:
                record.last_error = error
        self._settle(record, ok)

    @contextmanager
    def lease(self, service: str, *, strategy: Strategy = "round_robin") -> Iterator[T]:
        """``with registry.lease(service) as instance:`` — chosen, and counted in flight.

        Leaving the block normally is a success; an ``Exception`` is a failure (re-raised). A
        cancellation reports nothing: it says nothing about the instance.
        """
        taken = self.acquire(service, strategy=strategy)
        ok: bool | None = None
        try:
            yield taken.instance
            ok = True
        except Exception:
            ok = False
            raise
        finally:
            self.release(taken, ok=ok)

    @asynccontextmanager
    async def use(self, service: str, *, strategy: Strategy = "round_robin") -> AsyncIterator[T]:
        """``async with registry.use(service) as instance:`` — ``lease`` for async code."""
        with self.lease(service, strategy=strategy) as instance:
            yield instance

    def _registry(self, service: str) -> UniversalRegistry[_Instance[T]]:
        registry = self._services.get(service)
        if registry is None:
            raise NotFound(f"no instance of service {service!r} is registered")
        return registry

    def _choose(
        self, service: str, strategy: str, exclude: Collection[str] = ()
    ) -> tuple[str, _Instance[T]]:
        if strategy not in _STRATEGIES:
            raise InvalidRequest(f"unknown strategy {strategy!r} (known: {sorted(_STRATEGIES)})")
        registry = self._services.get(service)
        if registry is None:
            raise ServiceUnavailable(f"no instance of {service!r} is registered", service=service)
        entries = registry.items()
        # Resume after the last choice rather than at a counter modulo the healthy count, so
        # the rotation stays exact when instances turn unhealthy, recover, come or go.
        last = self._last_choice.get(service)
        start = 0 if last is None else bisect_right([key for key, _ in entries], last)
        wanted = [(k, r) for k, r in entries[start:] + entries[:start] if k not in exclude]
        candidates = [(k, r) for k, r in wanted if r.healthy]
        if strategy == "least_loaded":
            candidates.sort(key=lambda entry: entry[1].in_flight)  # stable: ties keep rotating
        for key, record in candidates:
            if record.breaker.allow():
                self._last_choice[service] = key
                record.choices += 1
                return key, record
        excluded = f", {len(entries) - len(wanted)} excluded" if exclude else ""
        raise ServiceUnavailable(
            f"no {service!r} instance can take a call: {len(entries)} registered{excluded}, "
            f"{len(wanted) - len(candidates)} unhealthy, "
            f"{len(candidates)} held off by their circuit breaker",
            service=service,
            unhealthy=len(wanted) - len(candidates),
        )

    def _settle(self, record: _Instance[T], ok: bool | None) -> None:
        if ok:
            record.breaker.record_success()
        elif ok is not None:  # None: the call was abandoned, not failed
            with self._lock:
                record.failures += 1
            record.breaker.record_failure()
