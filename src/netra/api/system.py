"""Liveness, readiness, and what the caller may use."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from netra.api.deps import AppState, CurrentUser
from netra.api.errors import DocumentedRoute
from netra.api.views.system import (
    AgentPage,
    AgentView,
    BusCheck,
    ClusterCheck,
    DatabaseCheck,
    EndpointCheck,
    Health,
    McpCheck,
    ProviderCheck,
    QueueCheck,
    Readiness,
    ReadinessChecks,
    ToolPage,
    ToolView,
    WriterCheck,
)
from netra.circuit import CircuitState
from netra.services import InstanceMetrics

router = APIRouter(tags=["system"], route_class=DocumentedRoute)


@router.get("/health")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    responses={
        503: {
            "model": Readiness,
            "description": "`not_ready`: the database or the event writer is down.",
        }
    },
)
async def ready(netra: AppState, response: Response) -> Readiness:
    """``ready``, ``degraded`` (Redis, an MCP server or a model provider endpoint is down; the
    rest works, still 200) or ``not_ready`` (503: the database or the event writer is down).
    A full queue of runs is reported (``checks.run_queue.shedding``) but changes none of them:
    the queue is the cluster's, so every instance sheds alike, and this one still serves
    everything else."""
    # Side by side: a database that hangs costs one timeout, not two.
    database, queue = await asyncio.gather(netra.db.health(), netra.shedder.measure())
    bus = netra.bus.health()
    servers = [source.status() for source in netra.mcp_servers]
    checks = ReadinessChecks(
        database=DatabaseCheck(
            healthy=database.healthy, backend=database.backend, reason=database.reason
        ),
        event_writer=WriterCheck(healthy=netra.writer.running),
        event_bus=BusCheck.model_validate(
            {"healthy": bus.healthy, "backend": bus.backend, "reason": bus.reason, **bus.counters}
        ),
        cluster=ClusterCheck(
            healthy=netra.supervisor.last_error is None,
            role=netra.role,
            executes_runs=netra.engine.executes,
            heartbeats=netra.supervisor.beats,
            reason=netra.supervisor.last_error,
        ),
        run_queue=QueueCheck.model_validate(queue.as_dict()),
        mcp_servers={status.name: McpCheck.model_validate(status.as_dict()) for status in servers},
        model_providers={
            name: _provider_check(endpoints)
            for name, endpoints in netra.catalog.endpoints().items()
        },
    )
    # Without the bus, events still reach the sockets of this instance and every socket
    # catches up from the event log once it is back; an MCP server that is down takes only
    # its own tools away; a provider endpoint that is down leaves its calls to the others,
    # or to the runs' fallback models: degraded, but still worth routing to.
    ready = checks.database.healthy and checks.event_writer.healthy
    endpoints = [e for p in checks.model_providers.values() for e in p.endpoints]
    degraded = (
        not bus.healthy
        or not all(s.healthy for s in servers)
        or not all(e.healthy and e.circuit is CircuitState.CLOSED for e in endpoints)
    )
    if not ready:
        response.status_code = 503
    status = "not_ready" if not ready else "degraded" if degraded else "ready"
    return Readiness(status=status, instance=netra.instance_id, checks=checks)


def _provider_check(endpoints: dict[str, InstanceMetrics]) -> ProviderCheck:
    checks = [
        EndpointCheck(
            url=url,
            healthy=state.healthy,
            circuit=state.circuit,
            in_flight=state.in_flight,
            last_error=state.last_error,
        )
        for url, state in endpoints.items()
    ]
    return ProviderCheck(
        healthy=any(e.healthy and e.circuit is not CircuitState.OPEN for e in checks),
        endpoints=checks,
    )


@router.get("/metrics", response_class=Response)
async def metrics(netra: AppState) -> Response:
    """Prometheus metrics of this instance (no user data: counts by outcome and agent),
    and the depth of the cluster's queue of runs, counted now."""
    await netra.shedder.measure()
    return Response(netra.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/agents")
async def agents(ctx: CurrentUser, netra: AppState) -> AgentPage:
    """The agents the caller's role and tier allow."""
    allowed = netra.config.limits_for(ctx.tier, ctx.limits).allowed_agents
    return AgentPage(
        items=[
            AgentView(name=d.name, description=d.description, model=d.model)
            for d in netra.agents.available_to(ctx, allowed=allowed)
        ]
    )


@router.get("/tools")
async def tools(ctx: CurrentUser, netra: AppState) -> ToolPage:
    """The tools the caller's role and tier allow."""
    allowed = netra.config.limits_for(ctx.tier, ctx.limits).allowed_tools
    items = []
    for _, tool in netra.tools.items():
        if allowed is not None and tool.name not in allowed:
            continue
        if tool.permission is None or ctx.has_permission(tool.permission):
            spec = tool.spec
            items.append(
                ToolView(
                    name=spec.name,
                    description=spec.description,
                    parameters=spec.parameters,
                    side_effects=tool.side_effects,
                    requires_approval=tool.requires_approval,
                )
            )
    return ToolPage(items=items)
