"""AgentRegistry: agent definitions by name; a fresh agent instance per user per run."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection

from netra.agents.assistant import ToolLoopAgent
from netra.agents.base import Agent, AgentDefinition
from netra.context import UserExecutionContext
from netra.errors import NotFound, PermissionDenied
from netra.registry import UniversalRegistry

AgentFactory = Callable[[AgentDefinition], Agent]


class AgentRegistry:
    """Registered agents, and which users have agents running right now."""

    def __init__(self) -> None:
        self._definitions: UniversalRegistry[AgentDefinition] = UniversalRegistry("agent")
        self._factories: dict[str, AgentFactory] = {}
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
        self._definitions.register(definition.name, definition, tags=tags, override=override)
        self._factories[definition.name] = factory

    def definition(self, name: str) -> AgentDefinition:
        return self._definitions.get(name)

    def has(self, name: str) -> bool:
        return self._definitions.has(name)

    def available_to(
        self, ctx: UserExecutionContext, *, allowed: Collection[str] | None = None
    ) -> list[AgentDefinition]:
        """The agents the user may start (those other agents start are not listed), of
        ``allowed`` (the tier's ``allowed_agents``) when given."""
        return [
            d
            for _, d in self._definitions.items()
            if not d.delegated_only
            and (d.permission is None or ctx.has_permission(d.permission))
            and (allowed is None or d.name in allowed)
        ]

    def check_access(self, ctx: UserExecutionContext, name: str) -> AgentDefinition:
        """The definition, if this user may start it; unknown and forbidden look alike."""
        if not self._definitions.has(name):
            raise NotFound(f"unknown agent {name!r}")
        definition = self._definitions.get(name)
        if definition.permission is not None and not ctx.has_permission(definition.permission):
            raise PermissionDenied(f"agent {name!r} needs the {definition.permission!r} permission")
        return definition

    def startable(self, ctx: UserExecutionContext, name: str) -> AgentDefinition:
        """The definition, if this user may start it with a message (``check_access``, and
        not an agent only other agents start)."""
        definition = self.check_access(ctx, name)
        if definition.delegated_only:
            raise PermissionDenied(f"agent {name!r} is started by other agents only")
        return definition

    def create_agent_for_user(self, name: str, ctx: UserExecutionContext) -> Agent:
        """A fresh instance of ``name`` for one run of this user."""
        definition = self.check_access(ctx, name)
        agent = self._factories[name](definition)
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
