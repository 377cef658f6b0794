"""A run killed mid-way continues from its checkpoint, and no tool call is made twice: a real
``netra serve`` on its SQLite file kills itself (SIGKILL) right after a run's first tool call
is stored (``faults.crash_at = tool_completed``), and is started again without the crash
point. The restarted server takes the run over; its new attempt rebuilds the run from the
turns table and the tool-call ledger (never from the event log) and finishes it.

Both kinds of agent are checked: the optimizer, whose steps delegate to its team (the crash
lands inside the first member's run, which the resumed step runs again), and the assistant's
model-driven tool loop. In each, the crash lands between a tool call's outcome
and the turn that would record the step, so the resumed attempt takes that step again and
the ledger answers it. What the killed attempt's model call cost is in the usage reports
beside the calls of the attempt that finished.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import EMBEDDED, embedded, merged
from tests.follower import Follower, assert_same_stream, resumptions
from tests.support import CanaryWatch, answer_text, assert_run_grammar, make_user, submit_run

CASES = {
    # The optimizer hands its work to its team: the crash lands in its first member's call.
    "optimizer": ("How can I cut my AI costs?", ["delegate"] * 3),
    "assistant": ("what is 12*7?", ["calculator"]),
}


def _settings(crash: bool) -> dict[str, Any]:
    # The restarted server takes the run over once the dead one's lease is out.
    settings: dict[str, Any] = {"cluster": {"lease_s": 1.0, "heartbeat_s": 0.2}}
    if crash:
        # Armed for every run: the test's user makes only the one.
        settings["faults"] = {"crash_at": "tool_completed"}
    return settings


@pytest.mark.parametrize("agent", sorted(CASES))
async def test_a_run_killed_after_a_tool_call_resumes_and_makes_each_call_once(
    tmp_path: Path, canaries: CanaryWatch, agent: str
) -> None:
    question, tools = CASES[agent]
    server = embedded(tmp_path / "embedded", canaries, _settings(crash=True))
    try:
        server.launch()
        await server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            user = await make_user(http)
            follower = Follower(user.token)
            await follower.attach(server)
            ack = await submit_run(http, user, question, agent=agent)
        assert await server.exited(60) == -9
        assert await follower.closed() is None  # dropped: a dead process says nothing

        server.configure(merged(EMBEDDED, _settings(crash=False)))
        server.launch()
        await server.wait_ready()
        await follower.attach(server)
        events = await follower.run_to_end(ack["run_id"], timeout=60)
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed", events[-1]
        assert [note["reason"] for note in resumptions(events)] == ["takeover"], [
            (e["type"], e["data"]) for e in events
        ]
        executed = Counter(e["data"]["tool"] for e in events if e["type"] == "tool_executing")
        assert executed == Counter(tools), executed  # none made twice, none left out
        completed = [e["data"] for e in events if e["type"] == "tool_completed"]
        assert all(c["status"] == "ok" for c in completed), completed
        answer = answer_text(events)
        assert ("84" in answer) if agent == "assistant" else ("not used any model" in answer)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            run = await http.get(f"/runs/{ack['run_id']}", headers=user.auth)
            assert run.json()["attempt"] == 2, run.json()
            report = (await http.get("/me/usage", headers=user.auth)).json()["totals"]
            if agent == "assistant":  # the killed attempt's call, then the two that finished
                assert (report["runs"], report["calls"]) == (1, 3), report
                assert report["input_tokens"] > run.json()["usage"]["input_tokens"], report
            else:  # the optimizer computes its answer: no model call
                assert report["calls"] == 0, report
            await assert_same_stream(follower, http, user)
        await follower.detach()
    finally:
        server.cleanup()
        canaries.check("output of the embedded server", server.log.read_bytes())
