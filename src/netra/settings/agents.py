"""Settings of the agents defined in the config file, of the tools and of the MCP servers
whose tools Netra offers."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from netra.settings.models import PROVIDER_NAME
from netra.settings.section import Section

MCP_SERVER_NAME = PROVIDER_NAME
"""MCP server names are lowercase too, for the same reason."""
TOOL_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
"""A tool prefix keeps tool names within what OpenAI and Anthropic accept."""


class McpServerSettings(Section):
    """One MCP server whose tools become Netra tools named `<tool_prefix>__<tool>`."""

    transport: Literal["stdio", "http"]
    """`stdio` (Netra starts `command` and talks over its stdin/stdout) or `http` (streamable
    HTTP at `url`)."""
    command: str | None = None
    """Program to start (stdio)."""
    args: list[str] = Field(default_factory=list)
    """Its arguments (stdio)."""
    env: dict[str, SecretStr] = Field(default_factory=dict)
    """Environment variables for the program besides PATH, HOME and the locale (stdio);
    values are secrets: masked and never logged."""
    url: str | None = None
    """Endpoint URL, e.g. `http://127.0.0.1:9000/mcp` (http)."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """HTTP headers sent with every request (http); values are secrets: masked and never
    logged."""
    tool_prefix: str | None = None
    """Prefix of its tools' names; empty means the server's name."""
    permission: str | None = None
    """Permission a user needs to use its tools; empty means every signed-in user."""
    requires_approval: bool = False
    """Pause the run until the owning user approves each call of its tools."""
    side_effects: Literal["none", "idempotent", "unsafe"] = "unsafe"
    """What re-running a call does, for tools that do not say (MCP `readOnlyHint` → `none`,
    `idempotentHint` → `idempotent`)."""
    timeout_s: float = Field(30.0, gt=0)
    """Time limit of one call of its tools."""
    connect_timeout_s: float = Field(30.0, gt=0)
    """Time limit of connecting (starting the program, the handshake) and listing its tools."""
    max_output_chars: int | None = Field(None, ge=100)
    """Largest result of one call; empty uses `tools.max_output_chars`."""
    allowed_tools: list[str] | None = None
    """Its tools (by their MCP names) Netra offers; empty means all."""
    reconnect_max_s: float = Field(60.0, gt=0)
    """Longest pause between reconnection attempts; pauses double up to it."""

    @field_validator("tool_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not TOOL_PREFIX.match(value):
            raise ValueError(f"tool_prefix must match {TOOL_PREFIX.pattern}")
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerSettings:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio MCP server needs a command")
        if self.transport == "http" and not self.url:
            raise ValueError("an http MCP server needs a url")
        return self


class ToolSettings(Section):
    timeout_s: float = Field(30.0, gt=0)
    """Default time limit of one tool call."""
    max_output_chars: int = Field(20_000, ge=100)
    """Tool output longer than this is refused as an error result."""
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    """MCP servers whose tools Netra offers (`[tools.mcp_servers.<name>]`); restart to apply."""

    @field_validator("mcp_servers")
    @classmethod
    def _server_names(cls, value: dict[str, McpServerSettings]) -> dict[str, McpServerSettings]:
        bad = [name for name in value if not MCP_SERVER_NAME.match(name)]
        if bad:
            raise ValueError(f"MCP server names must match {MCP_SERVER_NAME.pattern}: {bad}")
        prefixes = [server.tool_prefix or name for name, server in value.items()]
        clashing = sorted({prefix for prefix in prefixes if prefixes.count(prefix) > 1})
        if clashing:
            raise ValueError(f"MCP servers share a tool prefix: {clashing}")
        return value


AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""Agent names are lowercase too: environment variable paths are lowercased on the way in."""


class AgentSettings(Section):
    """An agent defined in the config file (`[agents.<name>]`): the tool loop (model → tools
    → model … until an answer) with these traits."""

    description: str = ""
    """What it does, as `GET /agents` and the chat page's picker show it."""
    model: str | None = None
    """Model id (`provider:model`, `offline`, `scripted`); empty: `models.default`."""
    fallbacks: list[str] | None = None
    """Model ids tried in order when the model fails before answering; empty:
    `models.fallbacks`; `[]`: none."""
    system_prompt: str = ""
    """Its instructions, sent first in every model call."""
    tools: list[str] | None = None
    """Tools it may call, by name (built-in, registered by `--app`, or an MCP server's
    `<tool_prefix>__<tool>`); empty: every tool the user may use; `[]`: none."""
    permission: str | None = None
    """Permission a user needs to see and start it; empty: every signed-in user."""
    tiers: list[str] | None = None
    """Tiers whose users may see and start it; empty: every tier. A tier's own
    `allowed_agents` applies as well."""
    double_texting: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    """A message sent while the thread's run is still active waits its turn (`enqueue`), is
    refused (`reject`) or cancels that run (`interrupt`)."""
    max_steps: int | None = Field(None, ge=1)
    """Model calls one of its runs may make, below the user's `max_steps`; empty: that."""
