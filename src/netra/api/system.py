"""Liveness, readiness, and what the caller may use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from netra.api.deps import AppState, CurrentUser

router = APIRouter(tags=["system"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_model=None)
async def ready(netra: AppState) -> JSONResponse:
    """``ready``, ``degraded`` (an MCP server is down: its tools are missing, the rest works,
    still 200) or ``not_ready`` (503)."""
    database = await netra.db.health()
    checks: dict[str, Any] = {
        "database": {
            "healthy": database.healthy,
            "backend": database.backend,
            "reason": database.reason,
        },
        "event_writer": {"healthy": netra.writer.running},
    }
    healthy = all(check["healthy"] for check in checks.values())
    servers = [source.status() for source in netra.mcp_servers]
    checks["mcp_servers"] = {status.name: status.as_dict() for status in servers}
    status = "ready" if all(s.healthy for s in servers) else "degraded"
    return JSONResponse(
        {"status": status if healthy else "not_ready", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/agents")
async def agents(ctx: CurrentUser, netra: AppState) -> dict[str, Any]:
    """The agents the caller's role and tier allow."""
    allowed = netra.config.limits_for(ctx.user_id, ctx.tier).allowed_agents
    return {
        "items": [
            {"name": d.name, "description": d.description, "model": d.model}
            for d in netra.agents.available_to(ctx)
            if allowed is None or d.name in allowed
        ]
    }


@router.get("/tools")
async def tools(ctx: CurrentUser, netra: AppState) -> dict[str, Any]:
    """The tools the caller's role and tier allow."""
    allowed = netra.config.limits_for(ctx.user_id, ctx.tier).allowed_tools
    items = []
    for _, tool in netra.tools.items():
        if allowed is not None and tool.name not in allowed:
            continue
        if tool.permission is None or ctx.has_permission(tool.permission):
            spec = tool.spec
            items.append(
                {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": spec.parameters,
                    "side_effects": tool.side_effects.value,
                    "requires_approval": tool.requires_approval,
                }
            )
    return {"items": items}
