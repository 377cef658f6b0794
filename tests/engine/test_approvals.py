"""Human approval against a real server: a tool that needs it pauses the run until the owning
user answers, over the socket or HTTP, across reconnects and restarts; the first answer
stands, so approving twice executes once."""

from __future__ import annotations

from pathlib import Path

import httpx

from netra.models.base import ModelRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import SideEffects, tool
from tests.conftest import ServerFactory
from tests.support import (
    LiveServer,
    Socket,
    User,
    answer_text,
    assert_run_grammar,
    make_user,
    open_socket,
)


def _answer_after_the_tool(request: ModelRequest) -> ScriptedTurn:
    """Ask for the email to be sent; once a tool result is in, report it."""
    last = request.messages[-1]
    if last.role == "tool":
        return ScriptedTurn.text(f"Tool said: {last.content}")
    return ScriptedTurn.call(
        "send_email", {"to": "boss@example.com", "body": "I quit"}, call_id="call_mail"
    )


def _serve(
    server_factory: ServerFactory, data_dir: Path | None = None
) -> tuple[LiveServer, list[str]]:
    server = server_factory(data_dir, models={"default": "scripted"})
    sent: list[str] = []

    @tool(description="Send an email.", side_effects=SideEffects.UNSAFE, requires_approval=True)
    def send_email(to: str, body: str) -> dict[str, str]:
        sent.append(to)
        return {"status": "sent", "to": to}

    server.netra.tools.register("send_email", send_email)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = _answer_after_the_tool
    return server, sent


async def _decide(
    http: httpx.AsyncClient, user: User, run_id: object, decision: str
) -> httpx.Response:
    return await http.post(
        f"/runs/{run_id}/tool_calls/call_mail/decision",
        json={"decision": decision},
        headers=user.auth,
    )


async def _paused(socket: Socket) -> tuple[dict[str, object], dict[str, object]]:
    ack = await socket.send_message("tell my boss I quit")
    required = await socket.first(lambda f: f["type"] == "approval_required")
    return ack, required


async def test_an_approved_call_runs_once_and_the_run_continues(
    server_factory: ServerFactory,
) -> None:
    server, sent = _serve(server_factory)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack, required = await _paused(socket)
        assert required["run_id"] == ack["run_id"]
        assert required["data"] == {
            "tool_call_id": "call_mail",
            "tool": "send_email",
            "arguments": {"to": "boss@example.com", "body": "I quit"},
            "side_effects": "unsafe",
        }
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "requires_approval" and sent == []

        await socket.send(
            {
                "type": "approve_tool",
                "run_id": ack["run_id"],
                "tool_call_id": "call_mail",
                "decision": "approve",
                "ref": "yes",
            }
        )
        answer = await socket.first(lambda f: f["type"] == "tool_decision")
        assert answer == {
            "type": "tool_decision",
            "ref": "yes",
            "run_id": ack["run_id"],
            "tool_call_id": "call_mail",
            "decision": "approved",
            "already_decided": False,
        }
        events = await socket.run_to_end(str(ack["run_id"]))
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        types = [e["type"] for e in events]
        assert types.index("approval_required") < types.index("tool_executing")
        done = next(e for e in events if e["type"] == "tool_completed")
        assert done["data"]["status"] == "ok" and done["data"]["result"]["status"] == "sent"
        assert "sent" in answer_text(events)

        again = await _decide(http, user, ack["run_id"], "deny")
        assert again.status_code == 200
        assert again.json()["already_decided"] is True and again.json()["decision"] == "approved"
        assert sent == ["boss@example.com"]
        await socket.close()


async def test_a_denied_call_never_runs_and_the_model_is_told(
    server_factory: ServerFactory,
) -> None:
    server, sent = _serve(server_factory)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack, _ = await _paused(socket)
        denied = await _decide(http, user, ack["run_id"], "deny")
        assert denied.status_code == 200 and denied.json()["decision"] == "denied"
        events = await socket.run_to_end(str(ack["run_id"]))
        assert_run_grammar(events)
        done = next(e for e in events if e["type"] == "tool_completed")
        assert done["data"]["error"]["code"] == "denied"
        assert "denied" in answer_text(events)
        assert sent == []
        other = await make_user(http, "other")
        theirs = await _decide(http, other, ack["run_id"], "approve")
        assert theirs.status_code == 404
        await socket.close()


async def test_a_pending_approval_survives_a_restart(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared"
    server, sent_before = _serve(server_factory, data_dir)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack, required = await _paused(socket)
        await socket.close()
    server.server.should_exit = True
    server.thread.join(timeout=30)

    restarted, sent = _serve(server_factory, data_dir)
    async with httpx.AsyncClient(base_url=restarted.url) as http:
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "requires_approval"
        socket = await open_socket(restarted, user.token, after_seq=int(required["seq"]) - 1)
        await socket.first(lambda f: f["type"] == "approval_required")
        approved = await _decide(http, user, ack["run_id"], "approve")
        assert approved.status_code == 200
        await socket.run_to_end(str(ack["run_id"]))
        events = (await http.get(f"/runs/{ack['run_id']}/events", headers=user.auth)).json()
        assert_run_grammar(events["items"])
        assert events["items"][-1]["data"]["outcome"] == "completed"
        assert sent_before == [] and sent == ["boss@example.com"]
        await socket.close()


async def test_cancelling_a_run_that_waits_for_approval(server_factory: ServerFactory) -> None:
    server, sent = _serve(server_factory)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack, _ = await _paused(socket)
        await socket.send({"type": "cancel_run", "run_id": ack["run_id"]})
        events = await socket.run_to_end(str(ack["run_id"]))
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "cancelled"
        late = await _decide(http, user, ack["run_id"], "approve")
        assert late.status_code == 200  # recorded, but the run is over: nothing runs
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "cancelled" and sent == []
        await socket.close()
