"""A run taken over while this very instance still executes an older attempt of it (its
lease ran out on a starved machine, then it took the orphan back itself): the old attempt
stops, the new one executes, and the run ends — it never sits held with nobody executing it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from netra.db import tables as t
from netra.db.records import utcnow
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import tool
from tests.conftest import ServerFactory
from tests.support import answer_text, assert_run_grammar, make_user, open_socket


async def test_a_run_taken_back_while_its_old_attempt_still_executes_here_finishes(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        models={"default": "scripted"}, cluster={"lease_s": 2.0, "heartbeat_s": 0.2}
    )
    calls: list[str] = []

    @tool(description="Work that is slow to stop once cancelled (a driver mid-cancel).")
    async def stubborn() -> str:
        calls.append("called")
        if len(calls) > 1:
            return "done"
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            calls.append("cancelled")
            await asyncio.sleep(1)  # still winding down when the run is taken back
            raise
        return "done"

    server.netra.tools.register("stubborn", stubborn)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = lambda request: (
        ScriptedTurn.text("finished at last")
        if any(m.role == "tool" for m in request.messages)
        else ScriptedTurn.call("stubborn", {})
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("go")
        await socket.first(lambda f: f["type"] == "tool_executing")
        # What a starved heartbeat leaves behind: the lease ran out while this instance
        # still executes the run, and the holder on record is gone.
        engine = create_async_engine(server.netra.settings.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.update(t.runs)
                    .where(t.runs.c.id == ack["run_id"])
                    .values(owner="inst_gone", lease_expires_at=utcnow() - timedelta(seconds=5))
                )
        finally:
            await engine.dispose()
        events = await socket.run_to_end(ack["run_id"], timeout=30)
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        notes = [e["data"]["resumed"] for e in events if "resumed" in e["data"]]
        assert [note["reason"] for note in notes] == ["takeover"], notes
        # One execution, one attempt number: the takeover counts it, the claim keeps it.
        assert notes[0]["attempt"] == events[0]["data"]["attempt"] + 1, (events[0], notes)
        assert answer_text(events) == "finished at last"
        assert calls == ["called", "cancelled", "called"]
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "completed"
        await socket.close()
