"""Tools from MCP servers, over stdio or streamable HTTP, on the official ``mcp`` SDK.

One ``McpToolSource`` per configured server (``tools.mcp_servers.<name>``). Started with the
application, it connects, lists the server's tools and registers each in the tool registry as
an ordinary ``Tool`` named ``<tool_prefix>__<tool>`` (OpenAI and Anthropic accept only
``[A-Za-z0-9_-]{1,64}``, so no dots). From there the dispatcher treats them like built-in
tools: permission, approval, argument validation (against the server's JSON schema), time
limit, output limit, ledger and events.

A server that cannot be reached does not stop Netra: the source logs why, reports it in
``status()`` (``/ready`` shows it as degraded) and keeps trying, pausing twice as long after
each failure up to ``reconnect_max_s``. While it is not connected its tools are not
registered; they return, freshly listed, when it reconnects. A connection is watched with
pings, and a call that finds it closed triggers the reconnect at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Sequence
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CONNECTION_CLOSED, CallToolResult, Implementation, TextContent
from mcp.types import Tool as McpTool

from netra import __version__
from netra.env import IsolatedEnvironment
from netra.errors import ToolError
from netra.registry import UniversalRegistry
from netra.settings.agents import McpServerSettings
from netra.tools.json_schema import JsonSchemaArguments
from netra.tools.mcp_status import McpState, McpStatus
from netra.tools.tool import SideEffects, Tool

log = logging.getLogger(__name__)

NAME_SEPARATOR = "__"
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What OpenAI and Anthropic accept as a tool name."""
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]")
FIRST_RETRY_S = 0.5
"""Pause before the first reconnection attempt; it doubles up to ``reconnect_max_s``."""
PING_INTERVAL_S = 15.0
"""How often a quiet connection is checked (by listing the tools again: MCP's ``ping`` is
gone from current protocol versions)."""
STOP_GRACE_S = 10.0
"""How long ``stop`` lets a connection wind down (the SDK bounds its own shutdown to less)
before cancelling it."""
MAX_LIST_PAGES = 100
"""A server whose tool listing never ends cannot hang the connection."""
_CONNECTION_ERRORS = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    httpx2.TransportError,
    OSError,
)


class _Lost(Exception):
    """The connection ended; the reason is the message."""


class McpToolSource:
    """Keeps one MCP server connected and its tools registered."""

    def __init__(
        self,
        name: str,
        settings: McpServerSettings,
        *,
        tools: UniversalRegistry[Tool],
        env: IsolatedEnvironment,
    ) -> None:
        self.name = name
        self._settings = settings
        self._tools = tools
        self._env = env
        self._prefix = settings.tool_prefix or name
        self._state = McpState.CONNECTING
        self._error: str | None = None
        self._registered: tuple[str, ...] = ()
        self._listed: list[str] = []
        """The tools last listed, serialised: a change re-registers them."""
        self._client: Client | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._first_attempt = asyncio.Event()
        self._stop = asyncio.Event()
        self._attempting = False
        self._task: asyncio.Task[None] | None = None

    def status(self) -> McpStatus:
        return McpStatus(self.name, self._state, self._registered, self._error)

    async def start(self) -> None:
        """Start connecting; returns once the first attempt has succeeded or failed."""
        self._task = asyncio.create_task(self._supervise(), name=f"mcp-{self.name}")
        await self._first_attempt.wait()

    async def stop(self) -> None:
        """End the connection the way the SDK expects (its transports shut the server down
        in a shielded scope, which a cancellation would cut short); only an attempt still
        connecting is cancelled."""
        self._stop.set()
        self._lose("stopping")
        task, self._task = self._task, None
        if task is not None and self._attempting:
            task.cancel()
        while task is not None and not task.done():
            await asyncio.wait({task}, timeout=STOP_GRACE_S)
            task.cancel()
        failure = task.exception() if task is not None and not task.cancelled() else None
        if failure is not None:
            log.error("MCP server %r stopped with %s", self.name, _describe(failure))
        self._unregister()
        self._state = McpState.STOPPED

    # ---- connection ----------------------------------------------------------------------
    async def _supervise(self) -> None:
        pause = min(FIRST_RETRY_S, self._settings.reconnect_max_s)
        while not self._stop.is_set():
            connected = False
            reason = "the connection ended"
            try:
                async with contextlib.AsyncExitStack() as stack:
                    self._attempting = True
                    async with asyncio.timeout(self._settings.connect_timeout_s):
                        client = await self._open(stack)
                        listed = await self._list(client)
                    self._attempting = False
                    self._connected(client, listed)
                    connected = True
                    await self._hold(client)
            except Exception as exc:  # whatever ends a connection, the answer is to retry
                reason = _describe(exc)
            finally:
                self._attempting = False
                self._client = None
                self._unregister()
            if self._stop.is_set():
                return
            if connected:
                pause = min(FIRST_RETRY_S, self._settings.reconnect_max_s)
                log.warning("MCP server %r disconnected (%s); reconnecting", self.name, reason)
            else:
                log.warning(
                    "MCP server %r unavailable (%s); retrying in %.1fs", self.name, reason, pause
                )
            self._state, self._error = McpState.RECONNECTING, reason
            self._first_attempt.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._stop.wait()
            if not connected:
                pause = min(pause * 2, self._settings.reconnect_max_s)

    async def _open(self, stack: contextlib.AsyncExitStack) -> Client:
        """A connected client whose resources ``stack`` releases."""
        settings = self._settings
        info = Implementation(name="netra", version=__version__)
        server: StdioServerParameters | Transport
        if settings.transport == "stdio":
            server = StdioServerParameters(
                command=settings.command or "",
                args=list(settings.args),
                env=self._env.subprocess_env(
                    {key: value.get_secret_value() for key, value in settings.env.items()}
                ),
            )
        else:
            # The SDK leaves an HTTP client it is given open: the stack closes it.
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers={k: v.get_secret_value() for k, v in settings.headers.items()},
                    timeout=httpx2.Timeout(
                        settings.connect_timeout_s, read=max(settings.timeout_s, 300)
                    ),
                )
            )
            server = streamable_http_client(settings.url or "", http_client=http)
        return await stack.enter_async_context(Client(server, client_info=info, cache=None))

    @staticmethod
    async def _list(client: Client) -> list[McpTool]:
        listed: list[McpTool] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return listed

    def _connected(self, client: Client, listed: Sequence[McpTool]) -> None:
        self._register(listed)
        if not self._stop.is_set():  # a stop during the attempt still ends the connection
            self._lost.clear()
        self._client = client
        self._state, self._error = McpState.CONNECTED, None
        self._first_attempt.set()
        log.info("MCP server %r connected: %d tools", self.name, len(self._registered))

    async def _hold(self, client: Client) -> None:
        """Return never; raise when the connection is lost. Every quiet interval the tools
        are listed again: that proves the server alive and picks up tools it changed."""
        while True:
            try:
                async with asyncio.timeout(PING_INTERVAL_S):
                    await self._lost.wait()
            except TimeoutError:
                async with asyncio.timeout(self._settings.connect_timeout_s):
                    listed = await self._list(client)
                if sorted(t.model_dump_json() for t in listed) != self._listed:
                    self._register(listed)
                    log.info("MCP server %r changed its tools: %d now", self.name, len(listed))
            else:
                raise _Lost(self._lost_reason)

    def _lose(self, reason: str) -> None:
        self._lost_reason = reason
        self._lost.set()

    # ---- tools ---------------------------------------------------------------------------
    def _register(self, listed: Sequence[McpTool]) -> None:
        self._listed = sorted(t.model_dump_json() for t in listed)
        self._unregister()
        allowed = self._settings.allowed_tools
        names: list[str] = []
        for remote in listed:
            if allowed is not None and remote.name not in allowed:
                continue
            tool = self._declare(remote)
            if tool is None:
                continue
            if self._tools.has(tool.name):
                log.warning(
                    "MCP server %r: tool %r skipped, the name is taken", self.name, tool.name
                )
                continue
            self._tools.register(tool.name, tool, tags=("mcp", f"mcp:{self.name}"))
            names.append(tool.name)
        self._registered = tuple(names)

    def _unregister(self) -> None:
        for name in self._registered:
            if self._tools.has(name):
                self._tools.remove(name)
        self._registered = ()

    def _declare(self, remote: McpTool) -> Tool | None:
        name = f"{self._prefix}{NAME_SEPARATOR}{_UNSAFE_CHARS.sub('_', remote.name)}"
        if not TOOL_NAME.match(name):
            log.warning("MCP server %r: tool %r skipped, %r is too long", self.name, remote, name)
            return None
        try:
            arguments = JsonSchemaArguments(dict(remote.input_schema))
        except ValueError as exc:
            log.warning("MCP server %r: tool %r skipped, %s", self.name, remote.name, exc)
            return None
        settings = self._settings
        return Tool(
            name=name,
            description=remote.description or remote.title or remote.name,
            function=functools.partial(self._call, remote.name),
            arguments=arguments,
            permission=settings.permission,
            side_effects=self._side_effects(remote),
            requires_approval=settings.requires_approval,
            timeout_s=settings.timeout_s,
            max_output_chars=settings.max_output_chars,
        )

    def _side_effects(self, remote: McpTool) -> SideEffects:
        hints = remote.annotations
        if hints is not None and hints.read_only_hint:
            return SideEffects.NONE
        if hints is not None and hints.idempotent_hint:
            return SideEffects.IDEMPOTENT
        return SideEffects(self._settings.side_effects)

    async def _call(self, remote: str, /, **arguments: Any) -> Any:
        """One ``tools/call``; the dispatcher bounds its time. Failures become ``ToolError``."""
        client = self._client
        if client is None:
            raise ToolError(f"MCP server {self.name!r} is not connected", code="tool_unavailable")
        try:
            result = await client.call_tool(remote, arguments)
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise ToolError(f"MCP error {exc.code}: {exc.message}") from None
            self._lose("connection closed")
            raise ToolError(
                f"MCP server {self.name!r} closed the connection", code="tool_unavailable"
            ) from None
        except _CONNECTION_ERRORS as exc:
            self._lose(_describe(exc))
            raise ToolError(
                f"lost the connection to MCP server {self.name!r}", code="tool_unavailable"
            ) from None
        if result.is_error:
            raise ToolError(_text(result) or f"{remote} reported an error")
        return _value(result)


def _value(result: CallToolResult) -> Any:
    """What the model sees: structured content when given, else the text, else the blocks."""
    if result.structured_content is not None:
        return result.structured_content
    if all(isinstance(block, TextContent) for block in result.content):
        return _text(result)
    return [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def _describe(exc: BaseException) -> str:
    """A one-line reason without a stack trace: the innermost first error of a group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "timed out"
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
