"""Where each MCP server's connection stands, as ``/ready`` reports it: apart from
``netra.tools.mcp`` so that reading it never imports the ``mcp`` SDK, which is loaded only
when ``tools.mcp_servers`` names a server."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class McpState(StrEnum):
    """Where the connection to one MCP server stands."""

    CONNECTING = "connecting"
    """The first attempt is under way."""
    CONNECTED = "connected"
    """Connected; its tools are registered."""
    RECONNECTING = "reconnecting"
    """Not connected (never was, or lost it); another attempt follows after a pause."""
    STOPPED = "stopped"
    """Stopped with the application."""


@dataclass(frozen=True, slots=True)
class McpStatus:
    """One MCP server, as ``/ready`` reports it."""

    name: str
    state: McpState
    tools: tuple[str, ...]
    """The Netra names of its registered tools."""
    error: str | None
    """Why the last attempt failed or the connection was lost."""

    @property
    def healthy(self) -> bool:
        return self.state is McpState.CONNECTED

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "state": self.state.value,
            "tools": len(self.tools),
            "reason": self.error,
        }
