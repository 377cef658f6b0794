"""Tools from MCP servers, against a real Netra server and a real MCP server (tests/tools/
mcp_server.py, on the official SDK) over stdio and over streamable HTTP: MCP tools run like
built-in ones — events, ledger, validation, errors, limits, approval, permissions — and a
server that is down leaves Netra serving, reporting it, until it comes back."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.records import ToolCallRecord
from netra.env import IsolatedEnvironment
from netra.models.base import ToolCallRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.support import CanaryWatch, LiveServer, User, assert_run_grammar, make_user, open_socket
from tests.tools.mcp_process import SERVER_SCRIPT, HttpMcpServer

McpConfig = Callable[..., dict[str, Any]]
STDIO: dict[str, Any] = {
    "transport": "stdio",
    "command": sys.executable,
    "args": [str(SERVER_SCRIPT), "stdio"],
}
"""The test MCP server as a child process of Netra."""


@pytest.fixture
def http_mcp(canaries: CanaryWatch) -> Iterator[HttpMcpServer]:
    server = HttpMcpServer(canaries.mcp_header)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["stdio", "http"])
def mcp_config(request: pytest.FixtureRequest) -> McpConfig:
    """Settings of one MCP server (``calc``) reaching the test server over each transport."""
    if request.param == "stdio":
        base = STDIO
    else:
        http: HttpMcpServer = request.getfixturevalue("http_mcp")
        http.start()
        base = {
            "transport": "http",
            "url": http.url,
            "headers": {"Authorization": f"Bearer {http.token}"},
        }

    def config(**extra: Any) -> dict[str, Any]:
        return {"mcp_servers": {"calc": {**base, **extra}}}

    return config


def _scripted(server: LiveServer, *turns: ScriptedTurn) -> None:
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.push(*turns)


def _calls(*calls: tuple[str, str, dict[str, Any]]) -> ScriptedTurn:
    return ScriptedTurn(tool_calls=tuple(ToolCallRequest(*call) for call in calls))


async def _run(server: LiveServer, user: User) -> list[dict[str, Any]]:
    socket_ = await open_socket(server, user.token)
    try:
        ack = await socket_.send_message("use the tools")
        events = await socket_.run_to_end(ack["run_id"], timeout=60)
    finally:
        await socket_.close()
    assert_run_grammar(events)
    return events


def _completed(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["data"]["tool_call_id"]: e["data"] for e in events if e["type"] == "tool_completed"}


async def _ledger(server: LiveServer, user: User, run_id: str) -> list[ToolCallRecord]:
    settings = server.netra.settings
    db = DatabaseManager(settings.database_url, settings.database)
    try:
        return await db.transact(
            ToolCallRepository(UserExecutionContext(user_id=user.id)).for_run(run_id)
        )
    finally:
        await db.close()


async def _until_ready(client: httpx.AsyncClient, status: str) -> None:
    """Wait (without a time threshold: the test's own timeout bounds it) for ``/ready``."""
    for _ in range(10_000):
        if (await client.get("/ready")).json()["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"/ready never said {status!r}")


@pytest.fixture
async def http() -> AsyncIterator[Callable[[LiveServer], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def client(server: LiveServer) -> httpx.AsyncClient:
        clients.append(httpx.AsyncClient(base_url=server.url, timeout=30))
        return clients[-1]

    yield client
    for each in clients:
        await each.aclose()


async def test_mcp_tools_run_like_builtin_tools(
    server_factory: ServerFactory,
    mcp_config: McpConfig,
    http: Callable[[LiveServer], httpx.AsyncClient],
) -> None:
    server = server_factory(models={"default": "scripted"}, tools=mcp_config())
    client = http(server)
    user = await make_user(client)
    listed = {t["name"]: t for t in (await client.get("/tools", headers=user.auth)).json()["items"]}
    assert {"calc__add", "calc__echo", "calc__lookup", "calc__nap"} <= set(listed)
    assert listed["calc__add"]["parameters"]["required"] == ["a", "b"]
    assert listed["calc__add"]["side_effects"] == "unsafe"
    assert listed["calc__lookup"]["side_effects"] == "none"  # readOnlyHint

    _scripted(
        server,
        _calls(("c_add", "calc__add", {"a": 2, "b": 40}), ("c_echo", "calc__echo", {"text": "hi"})),
        ScriptedTurn.text("done"),
    )
    events = await _run(server, user)
    assert events[-1]["data"]["outcome"] == "completed"
    executing = [e["data"] for e in events if e["type"] == "tool_executing"]
    assert {(e["tool"], e["tool_call_id"]) for e in executing} == {
        ("calc__add", "c_add"),
        ("calc__echo", "c_echo"),
    }
    done = _completed(events)
    assert done["c_add"]["status"] == "ok" and done["c_add"]["result"] == {"result": 42}
    assert done["c_echo"]["result"] == {"result": "hi"}

    ledger = await _ledger(server, user, events[0]["run_id"])
    by_id = {record.tool_call_id: record for record in ledger}
    assert by_id["c_add"].tool == "calc__add" and by_id["c_add"].status == "ok"
    assert by_id["c_add"].arguments == {"a": 2, "b": 40}
    assert by_id["c_add"].result == {"result": 42}
    assert by_id["c_add"].side_effects == "unsafe"


async def test_mcp_failures_become_structured_tool_errors(
    server_factory: ServerFactory,
    mcp_config: McpConfig,
    http: Callable[[LiveServer], httpx.AsyncClient],
) -> None:
    server = server_factory(
        models={"default": "scripted"}, tools=mcp_config(timeout_s=0.5, max_output_chars=200)
    )
    user = await make_user(http(server))
    _scripted(
        server,
        _calls(
            ("bad", "calc__add", {"a": "two", "b": 2}),
            ("missing", "calc__echo", {}),
            ("boom", "calc__explode", {"reason": "on purpose"}),
            ("slow", "calc__nap", {"seconds": 30}),
            ("big", "calc__flood", {"chars": 1000}),
        ),
        _calls(("after", "calc__add", {"a": 1, "b": 1})),
        ScriptedTurn.text("done"),
    )
    events = await _run(server, user)
    assert events[-1]["data"]["outcome"] == "completed"
    done = _completed(events)
    assert done["bad"]["error"]["code"] == "invalid_arguments"
    assert done["bad"]["error"]["message"].startswith("a: 'two' is not of type 'integer'")
    assert done["missing"]["error"] == {
        "code": "invalid_arguments",
        "message": "arguments: 'text' is a required property",
    }
    assert done["boom"]["error"]["code"] == "tool_error"
    assert "exploded: on purpose" in done["boom"]["error"]["message"]
    assert done["slow"]["error"]["code"] == "timeout"
    assert done["big"]["error"]["code"] == "output_too_large"
    # A timed-out call leaves the connection usable.
    assert done["after"]["status"] == "ok" and done["after"]["result"] == {"result": 2}
    for call_id in ("bad", "missing", "boom", "slow", "big"):
        assert done[call_id]["status"] == "error"
        assert "Traceback" not in str(done[call_id]["error"])


async def test_an_mcp_tool_that_requires_approval_waits_for_the_user(
    server_factory: ServerFactory,
    mcp_config: McpConfig,
    http: Callable[[LiveServer], httpx.AsyncClient],
) -> None:
    server = server_factory(
        models={"default": "scripted"}, tools=mcp_config(requires_approval=True)
    )
    client = http(server)
    user = await make_user(client)
    _scripted(
        server, _calls(("c_echo", "calc__echo", {"text": "approved"})), ScriptedTurn.text("ok")
    )
    socket_ = await open_socket(server, user.token)
    ack = await socket_.send_message("echo after approval")
    required = await socket_.first(lambda f: f["type"] == "approval_required")
    assert required["data"]["tool"] == "calc__echo"
    assert required["data"]["side_effects"] == "unsafe"
    assert not [f for f in socket_.frames if f["type"] == "tool_executing"]
    decided = await client.post(
        f"/runs/{ack['run_id']}/tool_calls/c_echo/decision",
        json={"decision": "approve"},
        headers=user.auth,
    )
    assert decided.status_code == 200
    events = await socket_.run_to_end(ack["run_id"], timeout=60)
    await socket_.close()
    assert_run_grammar(events)
    assert _completed(events)["c_echo"]["result"] == {"result": "approved"}


async def test_a_user_without_the_permission_cannot_see_or_call_mcp_tools(
    server_factory: ServerFactory, http: Callable[[LiveServer], httpx.AsyncClient]
) -> None:
    server = server_factory(
        models={"default": "scripted"},
        tools={"mcp_servers": {"calc": {**STDIO, "permission": "tools.admin"}}},
    )
    client = http(server)
    user = await make_user(client)
    names = [t["name"] for t in (await client.get("/tools", headers=user.auth)).json()["items"]]
    assert not [name for name in names if name.startswith("calc__")]
    assert server.netra.tools.has("calc__add")
    _scripted(server, _calls(("c_add", "calc__add", {"a": 1, "b": 2})), ScriptedTurn.text("no"))
    events = await _run(server, user)
    assert _completed(events)["c_add"]["error"]["code"] == "unknown_tool"


async def test_allowed_tools_and_prefix_choose_what_netra_offers(
    server_factory: ServerFactory, http: Callable[[LiveServer], httpx.AsyncClient]
) -> None:
    server = server_factory(
        tools={
            "mcp_servers": {
                "calc": {**STDIO, "tool_prefix": "math", "allowed_tools": ["add", "lookup"]}
            }
        }
    )
    client = http(server)
    user = await make_user(client)
    names = {t["name"] for t in (await client.get("/tools", headers=user.auth)).json()["items"]}
    assert {name for name in names if "__" in name} == {"math__add", "math__lookup"}
    ready = (await client.get("/ready")).json()
    assert ready["status"] == "ready"
    assert ready["checks"]["mcp_servers"]["calc"] == {
        "healthy": True,
        "state": "connected",
        "tools": 2,
        "reason": None,
    }


async def test_an_mcp_server_that_is_down_leaves_netra_serving_until_it_is_back(
    server_factory: ServerFactory,
    http_mcp: HttpMcpServer,
    http: Callable[[LiveServer], httpx.AsyncClient],
) -> None:
    server = server_factory(
        models={"default": "scripted"},
        tools={
            "mcp_servers": {
                "calc": {
                    "transport": "http",
                    "url": http_mcp.url,
                    "headers": {"Authorization": f"Bearer {http_mcp.token}"},
                    "reconnect_max_s": 0.2,
                }
            }
        },
    )
    client = http(server)
    ready = await client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    calc = body["checks"]["mcp_servers"]["calc"]
    assert calc["healthy"] is False and calc["state"] == "reconnecting" and calc["reason"]
    assert body["checks"]["database"]["healthy"] is True

    user = await make_user(client)
    _scripted(server, _calls(("c_add", "calc__add", {"a": 1, "b": 2})), ScriptedTurn.text("no"))
    events = await _run(server, user)
    assert events[-1]["data"]["outcome"] == "completed"
    assert _completed(events)["c_add"]["error"]["code"] == "unknown_tool"

    http_mcp.start()
    await _until_ready(client, "ready")
    _scripted(server, _calls(("c_add", "calc__add", {"a": 1, "b": 2})), ScriptedTurn.text("ok"))
    events = await _run(server, user)
    assert _completed(events)["c_add"]["result"] == {"result": 3}

    # Losing the server again: the next call finds out, and the source reconnects.
    http_mcp.stop()
    _scripted(server, _calls(("c_lost", "calc__add", {"a": 1, "b": 2})), ScriptedTurn.text("no"))
    events = await _run(server, user)
    lost = _completed(events)["c_lost"]
    assert lost["error"]["code"] == "tool_unavailable", lost
    await _until_ready(client, "degraded")


async def test_a_stdio_server_gets_only_the_configured_environment(
    server_factory: ServerFactory,
    http: Callable[[LiveServer], httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETRA_TEST_PARENT_ONLY", "must-not-leak")
    server = server_factory(
        models={"default": "scripted"},
        tools={"mcp_servers": {"calc": {**STDIO, "env": {"GREETING": "hello from netra"}}}},
    )
    user = await make_user(http(server))
    _scripted(
        server,
        _calls(
            ("given", "calc__environment", {"name": "GREETING"}),
            ("parent", "calc__environment", {"name": "NETRA_TEST_PARENT_ONLY"}),
        ),
        ScriptedTurn.text("done"),
    )
    done = _completed(await _run(server, user))
    assert done["given"]["result"] == {"result": "hello from netra"}
    assert done["parent"]["result"] == {"result": ""}


def test_mcp_secrets_are_masked_and_mcp_servers_need_a_restart(tmp_path: Path) -> None:
    config_file = tmp_path / "netra.toml"
    config_file.write_text(
        "[tools.mcp_servers.search]\n"
        'transport = "http"\n'
        'url = "http://127.0.0.1:9/mcp"\n'
        'headers = { Authorization = "Bearer very-secret-header-value" }\n'
        "[tools.mcp_servers.files]\n"
        'transport = "stdio"\n'
        'command = "mcp-files"\n'
        'env = { FILES_TOKEN = "very-secret-env-value" }\n'
    )
    config = UnifiedConfigurationManager(IsolatedEnvironment.isolated(), config_file=config_file)
    shown = {path: value for path, value, _ in config.describe()}
    assert "very-secret" not in repr(shown)
    assert shown["tools.mcp_servers.search.headers.Authorization"].startswith("Be****")
    assert shown["tools.mcp_servers.files.env.FILES_TOKEN"].startswith("ve****")
    assert shown["tools.mcp_servers.search.url"] == "http://127.0.0.1:9/mcp"

    config_file.write_text(config_file.read_text().replace("mcp-files", "mcp-files-2"))
    report = config.reload()
    assert report.restart_required == ("tools.mcp_servers.files.command",)
    assert config.settings.tools.mcp_servers["files"].command == "mcp-files"
