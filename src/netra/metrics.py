"""Prometheus metrics of one Netra process, served at ``GET /metrics``.

Counters that happen at a moment (runs ending, by outcome and agent; their duration; messages
shed) are instruments the engine and the run service update; levels that already live in
Netra's objects (sockets open, runs executing, events written, event-bus counters, the state
of every model provider endpoint) are read when Prometheus scrapes, so nothing is counted
twice. The one level that lives in the database, the depth of the cluster's queue of runs,
is counted by ``GET /metrics`` just before it renders. Labels never carry user ids or other
user data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RUN_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
CIRCUIT_STATES = ("closed", "open", "half_open")


@dataclass(frozen=True, slots=True)
class EndpointLevel:
    """One model provider endpoint, as the ``ServiceRegistry`` sees it now."""

    provider: str
    endpoint: str
    """Its base URL."""
    circuit: str
    """One of ``CIRCUIT_STATES``."""
    healthy: bool
    in_flight: int
    calls: int
    failures: int


@dataclass(frozen=True, slots=True)
class Levels:
    """What the process holds right now, read at scrape time."""

    sockets: int
    socket_users: int
    runs_executing: int
    events_written: int
    event_batches: int
    sockets_caught_up: int
    bus: Mapping[str, int]
    model_endpoints: Sequence[EndpointLevel] = ()


class Metrics:
    """The process's metric registry and the instruments Netra's components update."""

    def __init__(self, levels: Callable[[], Levels]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs_finished = Counter(
            "netra_runs_finished",
            "Runs that reached a final state, by outcome and agent.",
            ["outcome", "agent"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "netra_run_seconds",
            "Time from a run's start to its final state.",
            ["agent"],
            buckets=RUN_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.runs_lost = Counter(
            "netra_runs_lost",
            "Runs stopped here because another instance took them over (lease ran out).",
            registry=self.registry,
        )
        self.runs_recovered = Counter(
            "netra_runs_recovered",
            "Runs this instance took over from the cluster, by why they needed an executor.",
            ["reason"],
            registry=self.registry,
        )
        self.fenced_writes = Counter(
            "netra_fenced_writes",
            "Writes refused because the run's attempt had moved on (events, final states).",
            registry=self.registry,
        )
        self.runs_shed = Counter(
            "netra_runs_shed",
            "Messages this instance refused because the cluster's queue of runs was full.",
            registry=self.registry,
        )
        self.runs_queued = Gauge(
            "netra_runs_queued",
            "Runs waiting to execute in the cluster's queue (the same on every instance; "
            "NaN while the database does not answer).",
            registry=self.registry,
        )
        self.registry.register(_LevelCollector(levels))

    def run_lost(self) -> None:
        self.runs_lost.inc()

    def run_recovered(self, reason: str) -> None:
        self.runs_recovered.labels(reason=reason).inc()

    def write_fenced(self, count: int = 1) -> None:
        self.fenced_writes.inc(count)

    def run_shed(self) -> None:
        self.runs_shed.inc()

    def queue_counted(self, depth: int | None) -> None:
        """The queue's depth as just counted; None when it could not be."""
        self.runs_queued.set(float("nan") if depth is None else depth)

    def run_finished(self, *, agent: str, outcome: str, seconds: float | None) -> None:
        self.runs_finished.labels(outcome=outcome, agent=agent).inc()
        if seconds is not None:
            self.run_seconds.labels(agent=agent).observe(max(0.0, seconds))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LevelCollector(Collector):
    def __init__(self, levels: Callable[[], Levels]) -> None:
        self._levels = levels

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: the levels are read only when Prometheus scrapes."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        now = self._levels()
        yield GaugeMetricFamily("netra_sockets", "WebSockets open.", value=now.sockets)
        yield GaugeMetricFamily(
            "netra_socket_users", "Users with at least one socket open.", value=now.socket_users
        )
        yield GaugeMetricFamily(
            "netra_runs_executing",
            "Runs executing or waiting for a slot.",
            value=now.runs_executing,
        )
        yield CounterMetricFamily(
            "netra_events_written", "Events stored in the event log.", value=now.events_written
        )
        yield CounterMetricFamily(
            "netra_event_batches", "Event-log write transactions.", value=now.event_batches
        )
        yield CounterMetricFamily(
            "netra_socket_catch_ups",
            "Sockets a position check sent to the event log: events stored, never published.",
            value=now.sockets_caught_up,
        )
        bus = CounterMetricFamily(
            "netra_event_bus", "Event-bus activity, by kind.", labels=["kind"]
        )
        for kind, value in sorted(now.bus.items()):
            if isinstance(value, int) and not isinstance(value, bool):
                bus.add_metric([kind], value)
        yield bus
        yield from _endpoint_metrics(now.model_endpoints)


def _endpoint_metrics(endpoints: Sequence[EndpointLevel]) -> Iterator[Metric]:
    labels = ["provider", "endpoint"]
    circuit = GaugeMetricFamily(
        "netra_model_endpoint_circuit",
        "Circuit state of each model provider endpoint: 1 for the state it is in, else 0.",
        labels=[*labels, "state"],
    )
    healthy = GaugeMetricFamily(
        "netra_model_endpoint_healthy",
        "Whether each model provider endpoint passed its latest health probe (1) or not (0).",
        labels=labels,
    )
    in_flight = GaugeMetricFamily(
        "netra_model_endpoint_in_flight",
        "Model calls streaming from each provider endpoint now.",
        labels=labels,
    )
    calls = CounterMetricFamily(
        "netra_model_endpoint_calls", "Model calls sent to each provider endpoint.", labels=labels
    )
    failures = CounterMetricFamily(
        "netra_model_endpoint_failures",
        "Model calls to each provider endpoint that failed as unavailable.",
        labels=labels,
    )
    for point in endpoints:
        names = [point.provider, point.endpoint]
        for state in CIRCUIT_STATES:
            circuit.add_metric([*names, state], float(point.circuit == state))
        healthy.add_metric(names, float(point.healthy))
        in_flight.add_metric(names, point.in_flight)
        calls.add_metric(names, point.calls)
        failures.add_metric(names, point.failures)
    yield from (circuit, healthy, in_flight, calls, failures)
