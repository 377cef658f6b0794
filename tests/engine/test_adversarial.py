"""Adversarial runs: the scripted model obeys an attacker. Every call it makes is denied or
bounded, audited in the tool-call ledger, and a denied call has no side effect."""

from __future__ import annotations

import json
import uuid

import httpx

from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.models.base import ToolCallRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.settings import DatabaseSettings
from netra.tools.tool import SideEffects, tool
from tests.conftest import ServerFactory
from tests.support import assert_run_grammar, make_user, open_socket


async def test_an_attacking_model_is_denied_bounded_and_audited(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    effects: list[str] = []

    @tool(description="Wipe the server.", permission="tools.admin", side_effects=SideEffects.UNSAFE)
    def wipe() -> str:
        effects.append("wiped")
        return "gone"

    @tool(description="Dump a lot of data.")
    def dump() -> str:
        effects.append("dumped")
        return "x" * 10_000_000

    server.netra.tools.register("wipe", wipe)
    server.netra.tools.register("dump", dump)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        victim, attacker = await make_user(http, "victim"), await make_user(http, "attacker")
        socket = await open_socket(server, victim.token)
        pin = uuid.uuid4().hex  # never in an id by chance, as a 4-digit pin was (CI, once)
        secret = await socket.send_message(f"my bank pin is {pin}")
        await socket.run_to_end(secret["run_id"])
        await socket.close()

        model = server.netra.models.get("scripted")
        assert isinstance(model, ScriptedModel)
        model.push(
            ScriptedTurn(
                tool_calls=(
                    ToolCallRequest("c_missing", "rm_rf", {"path": "/"}),
                    ToolCallRequest("c_admin", "wipe", {}),
                    ToolCallRequest(
                        "c_other",
                        "search_threads",
                        {"query": "bank pin", "user_id": victim.id},
                    ),
                    ToolCallRequest("c_search", "search_threads", {"query": "bank pin"}),
                    ToolCallRequest("c_big", "dump", {}),
                )
            ),
            ScriptedTurn.text("done"),
        )
        socket = await open_socket(server, attacker.token)
        ack = await socket.send_message("do your worst")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        done = {
            e["data"]["tool_call_id"]: e["data"] for e in events if e["type"] == "tool_completed"
        }
        assert done["c_missing"]["error"]["code"] == "unknown_tool"
        assert done["c_admin"]["error"]["code"] == "unknown_tool"  # forbidden looks missing
        assert done["c_other"]["error"]["code"] == "invalid_arguments"
        assert done["c_search"]["status"] == "ok" and done["c_search"]["result"] == []
        assert done["c_big"]["error"]["code"] == "output_too_large"
        assert effects == ["dumped"]  # the denied calls never ran
        assert pin not in json.dumps(events)
        assert max(len(json.dumps(e)) for e in events) < 20_000  # bounded on the wire

        # The server's database objects live on its own event loop: read with our own.
        db = DatabaseManager(server.netra.settings.database_url, DatabaseSettings())
        try:
            ledger = await db.transact(
                ToolCallRepository(UserExecutionContext(user_id=attacker.id)).for_run(ack["run_id"])
            )
        finally:
            await db.close()
        audited = {record.tool_call_id: record for record in ledger}
        assert set(audited) == set(done)
        assert all(record.status == "error" for k, record in audited.items() if k != "c_search")
        assert audited["c_big"].result is None
        assert audited["c_other"].arguments["user_id"] == victim.id  # recorded as asked
        await socket.close()
