"""A tiny MCP server for the tests, on the official SDK's server API.

    python mcp_server.py stdio
    python mcp_server.py http PORT      # streamable HTTP on 127.0.0.1:PORT/mcp

Over HTTP every request must carry ``Authorization: Bearer $MCP_TEST_TOKEN`` (when that
variable is set), so the tests see Netra send the configured headers.

``record`` is the tests' side effect that must never happen twice: it appends its token to
the file named by ``$MCP_RECORD_FILE``, one line per call, so a test counts the executions.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from starlette.types import ASGIApp, Receive, Scope, Send

server = MCPServer("netra-test")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Echo the text back.")
def echo(text: str) -> str:
    return text


@server.tool(description="Always fails.")
def explode(reason: str = "boom") -> str:
    raise ToolError(f"exploded: {reason}")


@server.tool(description="Sleep for a while, then answer.")
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


@server.tool(description="Look up a constant.", annotations=ToolAnnotations(read_only_hint=True))
def lookup(name: str) -> float:
    return {"pi": 3.14159, "e": 2.71828}.get(name, 0.0)


@server.tool(description="Answer with a lot of text.")
def flood(chars: int) -> str:
    return "x" * chars


@server.tool(description="Record a token (after delay_s seconds); not safe to repeat.")
async def record(token: str, delay_s: float = 0.0) -> str:
    await asyncio.sleep(delay_s)
    await asyncio.to_thread(_append, Path(os.environ["MCP_RECORD_FILE"]), token)
    return "recorded"


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:  # O_APPEND: one whole line per call
        handle.write(f"{line}\n")


@server.tool(description="Read one of this process's environment variables.")
def environment(name: str) -> str:
    return os.environ.get(name, "")


def _guarded(app: ASGIApp, token: str) -> ASGIApp:
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    if sys.argv[1] == "stdio":
        server.run("stdio")
        return
    app: ASGIApp = server.streamable_http_app()
    token = os.environ.get("MCP_TEST_TOKEN")
    if token:
        app = _guarded(app, token)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")


if __name__ == "__main__":
    main()
