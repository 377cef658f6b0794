"""Agents of the config file: each ``[agents.<name>]`` table (``AgentSettings``) becomes an
``AgentDefinition`` of the tool loop.

The settings model checks what the settings alone can (names, model ids, tiers); the tools an
agent names are checked here, against the tool registry, when the agents are loaded — at
start, after any ``--app`` setup registered its tools, and before every edit of the file is
accepted. An MCP server's tools are known only once it connects, so a name
``<tool_prefix>__<tool>`` is accepted by its prefix.
"""

from __future__ import annotations

from netra.agents.base import AgentDefinition
from netra.agents.registry import AgentRegistry
from netra.config import UnifiedConfigurationManager
from netra.errors import ConfigurationError, did_you_mean
from netra.registry import UniversalRegistry
from netra.settings import Settings
from netra.settings.agents import AgentSettings
from netra.tools.tool import Tool

MCP_SEPARATOR = "__"
"""Between an MCP server's tool prefix and its tool's name (``netra.tools.mcp``)."""


def configured_agents(
    settings: Settings, tools: UniversalRegistry[Tool]
) -> dict[str, AgentDefinition]:
    """The config file's agents; ``ConfigurationError`` for the first tool no registry or
    MCP server has, with the closest name."""
    prefixes = {server.tool_prefix or name for name, server in settings.tools.mcp_servers.items()}
    known = tools.keys()
    for name, agent in settings.agents.items():
        for tool in agent.tools or ():
            prefix, separator, _ = tool.partition(MCP_SEPARATOR)
            if tool in known or (separator and prefix in prefixes):
                continue
            mcp = "".join(f", {prefix}__…" for prefix in sorted(prefixes))
            raise ConfigurationError(
                f"agents.{name}.tools: unknown tool {tool!r}{did_you_mean(tool, known)}; "
                f"known tools: {', '.join(known)}{mcp}"
            )
    return {name: _definition(name, agent) for name, agent in settings.agents.items()}


def _definition(name: str, agent: AgentSettings) -> AgentDefinition:
    return AgentDefinition(
        name=name,
        description=agent.description,
        model=agent.model,
        fallbacks=None if agent.fallbacks is None else tuple(agent.fallbacks),
        tools=None if agent.tools is None else tuple(agent.tools),
        system_prompt=agent.system_prompt,
        permission=agent.permission,
        tiers=None if agent.tiers is None else tuple(agent.tiers),
        max_steps=agent.max_steps,
        double_texting=agent.double_texting,
    )


def follow_config(
    agents: AgentRegistry, config: UnifiedConfigurationManager, tools: UniversalRegistry[Tool]
) -> None:
    """Load the config file's agents into ``agents`` now, and again whenever an edit of
    them is accepted; an edit naming an unknown tool, or an agent registered in code, is
    refused like any invalid setting (the file changes nothing and the log says why)."""

    def check(settings: Settings) -> None:
        agents.check_configured(configured_agents(settings, tools))

    def reload(old: Settings, new: Settings, _paths: list[str]) -> None:
        if old.agents != new.agents:
            agents.configure(configured_agents(new, tools))

    config.add_check(check)
    agents.configure(configured_agents(config.settings, tools))
    config.on_change(reload)
