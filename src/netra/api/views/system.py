"""What a caller may use (agents, tools) and the state of the process and the cluster."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from netra.api.views import Timestamp, View
from netra.circuit import CircuitState
from netra.tools.mcp_status import McpState
from netra.tools.tool import SideEffects


# ---- what the caller may use ---------------------------------------------------------------
class AgentView(View):
    name: str
    description: str
    model: str | None
    """The model id it runs on; null uses the configured default."""


class AgentPage(View):
    items: list[AgentView]


class ToolView(View):
    name: str
    description: str
    parameters: dict[str, Any]
    """The JSON Schema of the tool's arguments."""
    side_effects: SideEffects
    requires_approval: bool
    """Each call waits for the owning user's approval."""


class ToolPage(View):
    items: list[ToolView]


# ---- the cluster and the process -----------------------------------------------------------
class InstanceView(View):
    id: str
    role: str
    """``serve`` or ``worker``."""
    host: str
    pid: int
    version: str
    started_at: Timestamp
    heartbeat_at: Timestamp
    stopped_at: Timestamp | None
    alive: bool
    """Not stopped, and beat within one lease."""
    runs_executing: int
    sockets: int


class InstancePage(View):
    instance: str
    """The id of the instance that answered."""
    items: list[InstanceView]
    """Every instance that beat within the last hour, newest first."""


class Health(View):
    status: Literal["ok"]


class DatabaseCheck(View):
    healthy: bool
    backend: str
    reason: str | None


class WriterCheck(View):
    healthy: bool


class BusCheck(View):
    """The event bus; a Redis bus adds its counters (``published``, ``dropped`` …)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, int] = Field(init=False)
    healthy: bool
    backend: str
    reason: str | None


class ClusterCheck(View):
    healthy: bool
    role: str
    executes_runs: bool
    heartbeats: int
    reason: str | None


class QueueCheck(View):
    queued: int | None
    """Runs waiting to execute in the cluster; null when the database did not answer."""
    max_queued_runs: int
    """``limits.max_queued_runs``; 0 means no limit."""
    shedding: bool
    """Whether a new message would be refused (``503 overloaded``) now."""


class McpCheck(View):
    healthy: bool
    state: McpState
    tools: int
    """How many of its tools are registered."""
    reason: str | None


class EndpointCheck(View):
    """One endpoint of a model provider."""

    url: str
    healthy: bool
    """Whether its latest health probe passed (true until one has run)."""
    circuit: CircuitState
    """``closed`` (calls flow), ``open`` (skipped without a call) or ``half_open`` (the next
    call is a trial)."""
    in_flight: int
    """Model calls streaming from it now."""
    last_error: str | None
    """Why its latest failed call or probe failed (kept once it recovers)."""


class ProviderCheck(View):
    healthy: bool
    """Whether one of its endpoints at least can take a call now."""
    endpoints: list[EndpointCheck]


class ReadinessChecks(View):
    database: DatabaseCheck
    event_writer: WriterCheck
    event_bus: BusCheck
    cluster: ClusterCheck
    run_queue: QueueCheck
    mcp_servers: dict[str, McpCheck]
    """By server name."""
    model_providers: dict[str, ProviderCheck]
    """The providers built so far (those the configured models name), by name."""


class Readiness(View):
    status: Literal["ready", "degraded", "not_ready"]
    instance: str
    checks: ReadinessChecks
