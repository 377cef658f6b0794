"""AgentRegistry: agent definitions by name; a fresh agent instance per user per run.

Two kinds of definition share one namespace: those registered in code (the built-in
agents, and what an ``--app`` setup registers) and those of the config file
(``[agents.<name>]``, ``netra.agents.configured``), which an edit of the file replaces as a
whole for new runs. A config agent never replaces one registered in code: the file is
refused instead.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Mapping

from netra.agents.assistant import ToolLoopAgent
from netra.agents.base import Agent, AgentDefinition
from netra.context import UserExecutionContext
from netra.errors import ConfigurationError, Conflict, NotFound, PermissionDenied
from netra.registry import UniversalRegistry

AgentFactory = Callable[[AgentDefinition], Agent]


class AgentRegistry:
    """Registered agents, and which users have agents running right now."""

    def __init__(self) -> None:
        self._definitions: UniversalRegistry[AgentDefinition] = UniversalRegistry("agent")
        self._factories: dict[str, AgentFactory] = {}
        self._configured: Mapping[str, AgentDefinition] = {}
        """The config file's agents (tool loops), replaced whole on every accepted edit."""
        self._active: Counter[str] = Counter()
        self._lock = threading.Lock()

    def register(
        self,
        definition: AgentDefinition,
        factory: AgentFactory = ToolLoopAgent,
        *,
        tags: tuple[str, ...] = (),
        override: bool = False,
    ) -> None:
        if definition.name in self._configured:
            raise Conflict(f"agent {definition.name!r} is defined in the config file")
        self._definitions.register(definition.name, definition, tags=tags, override=override)
        self._factories[definition.name] = factory

    def check_configured(self, definitions: Mapping[str, AgentDefinition]) -> None:
        """Refuse config agents named like an agent registered in code."""
        for name in definitions:
            if self._definitions.has(name):
                raise ConfigurationError(
                    f"agents.{name}: {name!r} is an agent registered in code (built in or by "
                    "--app); a config agent cannot replace it: choose another name"
                )

    def configure(self, definitions: Mapping[str, AgentDefinition]) -> None:
        """Serve these config agents from now on, in place of the previous ones: new runs
        get them; an attempt already executing keeps the definition it started with."""
        self.check_configured(definitions)
        self._configured = dict(definitions)

    def _find(self, name: str) -> AgentDefinition | None:
        configured = self._configured.get(name)
        if configured is not None:
            return configured
        return self._definitions.get(name) if self._definitions.has(name) else None

    def definition(self, name: str) -> AgentDefinition:
        found = self._find(name)
        if found is None:
            raise NotFound(f"unknown agent {name!r}")
        return found

    def has(self, name: str) -> bool:
        return self._find(name) is not None

    def _all(self) -> list[AgentDefinition]:
        found = dict(self._definitions.items())
        found.update(self._configured)
        return [found[name] for name in sorted(found)]

    def available_to(
        self, ctx: UserExecutionContext, *, allowed: Collection[str] | None = None
    ) -> list[AgentDefinition]:
        """The agents the user may start (those other agents start are not listed), of
        ``allowed`` (the tier's ``allowed_agents``) when given."""
        return [
            d
            for d in self._all()
            if not d.delegated_only
            and _refusal(ctx, d) is None
            and (allowed is None or d.name in allowed)
        ]

    def check_access(self, ctx: UserExecutionContext, name: str) -> AgentDefinition:
        """The definition, if this user may start it; unknown and forbidden look alike."""
        definition = self._find(name)
        if definition is None:
            raise NotFound(f"unknown agent {name!r}")
        refusal = _refusal(ctx, definition)
        if refusal is not None:
            raise PermissionDenied(refusal)
        return definition

    def startable(self, ctx: UserExecutionContext, name: str) -> AgentDefinition:
        """The definition, if this user may start it with a message (``check_access``, and
        not an agent only other agents start)."""
        definition = self.check_access(ctx, name)
        if definition.delegated_only:
            raise PermissionDenied(f"agent {name!r} is started by other agents only")
        return definition

    def create_agent_for_user(
        self, definition: AgentDefinition, ctx: UserExecutionContext
    ) -> Agent:
        """A fresh instance of the agent ``definition`` (as ``check_access`` resolved it for
        this run) for one run of this user."""
        agent = self._factories.get(definition.name, ToolLoopAgent)(definition)
        with self._lock:
            self._active[ctx.user_id] += 1
        return agent

    def release(self, ctx: UserExecutionContext) -> None:
        """The run of one of this user's agents ended."""
        with self._lock:
            self._active[ctx.user_id] -= 1
            if self._active[ctx.user_id] <= 0:
                del self._active[ctx.user_id]

    def active(self) -> dict[str, int]:
        """Agents running right now, per user."""
        with self._lock:
            return dict(self._active)


def _refusal(ctx: UserExecutionContext, definition: AgentDefinition) -> str | None:
    """Why this user may not start the agent, or None."""
    if definition.permission is not None and not ctx.has_permission(definition.permission):
        return f"agent {definition.name!r} needs the {definition.permission!r} permission"
    if definition.tiers is not None and ctx.tier not in definition.tiers:
        return f"the agent {definition.name!r} is not available on your plan"
    return None
