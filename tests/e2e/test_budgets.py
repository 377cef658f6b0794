"""Dollar budgets: a run's own (``run_usd_budget``) and its user's per day and per month,
checked at admission and after every model call, on a real server, both backends."""

from __future__ import annotations

from typing import Any

import httpx

from netra.models.base import ModelRequest, ToolCallRequest, estimate_tokens
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.security.principals import fresh_token
from tests.support import answer_text, grant_admin, make_user, open_socket

PRICED_OFFLINE = {"prices": [{"model": "offline", "input_per_mtok": 0, "output_per_mtok": 1000}]}
"""Each word the offline model writes costs about a tenth of a cent."""


async def test_a_run_past_its_own_budget_fails_and_keeps_what_it_wrote(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models=PRICED_OFFLINE, limits={"run_usd_budget": 0.01})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http, "spender")
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("count to 100")
        events = await socket.run_to_end(ack["run_id"])
        ended = events[-1]["data"]
        assert ended["outcome"] == "failed" and ended["error"]["code"] == "cost_budget"
        assert ended["usage"]["cost_usd"] > 0.01
        assert answer_text(events).startswith("1 2 3")
        stored = await http.get(f"/threads/{ack['thread_id']}/messages", headers=user.auth)
        assert stored.json()["items"][-1]["content"] == answer_text(events), "the answer stays"
        cheap = await socket.send_message("count to 3", thread_id=ack["thread_id"])
        assert (await socket.run_to_end(cheap["run_id"]))[-1]["data"]["outcome"] == "completed"
        await socket.close()


async def test_a_users_daily_budget_warns_then_stops_a_run_then_refuses_with_retry_after(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models=PRICED_OFFLINE)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, admin = await make_user(http, "daily"), await make_user(http, "boss")
        grant_admin(server, admin.email)
        boss = {"Authorization": f"Bearer {await fresh_token(http, admin)}"}
        socket = await open_socket(server, user.token)
        first = await socket.send_message("count to 50")
        spent = (await socket.run_to_end(first["run_id"]))[-1]["data"]["usage"]["cost_usd"]
        assert spent > 0
        budget = round(spent * 1.1, 6)
        changed = await http.put(
            f"/admin/users/{user.id}/limits", json={"usd_per_day": budget}, headers=boss
        )
        assert changed.status_code == 200, changed.text

        second = await socket.send_message("count to 50", thread_id=first["thread_id"])
        assert second["type"] == "ack"
        warning = await socket.first(lambda f: f["type"] == "quota_warning")
        assert warning["data"] == {"quota": "usd_per_day", "used": spent, "limit": budget}
        ended = (await socket.run_to_end(second["run_id"]))[-1]["data"]
        assert ended["outcome"] == "failed" and ended["error"]["code"] == "cost_budget"
        assert "daily budget" in ended["error"]["message"]

        refused = await socket.send_message("count to 5", thread_id=first["thread_id"])
        assert (refused["type"], refused["code"]) == ("error", "budget_exceeded")
        assert 0 < refused["retry_after"] <= 86_400
        over_http = await http.post(
            f"/threads/{first['thread_id']}/runs", json={"content": "again"}, headers=user.auth
        )
        assert over_http.status_code == 429
        assert over_http.json()["error"]["code"] == "budget_exceeded"
        assert 0 < int(over_http.headers["Retry-After"]) <= 86_400
        me = (await http.get("/me", headers=user.auth)).json()
        assert me["usage"]["today"]["cost_usd"] == me["usage"]["month"]["cost_usd"] > budget
        # A monthly budget refuses the same way once spent; lifting both lets the user go on.
        await http.put(
            f"/admin/users/{user.id}/limits",
            json={"usd_per_day": None, "usd_per_month": budget},
            headers=boss,
        )
        monthly = await socket.send_message("count to 5", thread_id=first["thread_id"])
        assert monthly["code"] == "budget_exceeded" and "monthly" in monthly["message"]
        await http.put(f"/admin/users/{user.id}/limits", json={"usd_per_month": None}, headers=boss)
        again = await socket.send_message("count to 5", thread_id=first["thread_id"])
        assert again["type"] == "ack"
        await socket.run_to_end(again["run_id"])
        await socket.close()


PRICE_PER_MTOK = 1000.0
CALLS_PER_RUN = 6


def calls_then_answers(request: ModelRequest) -> ScriptedTurn:
    """A calculator call per step, then an answer: ``CALLS_PER_RUN`` model calls a run."""
    results = sum(1 for m in request.messages if m.role == "tool")
    if results < CALLS_PER_RUN - 1:
        call = ToolCallRequest(f"call_{results}", "calculator", {"expression": f"{results}+1"})
        return ScriptedTurn(tool_calls=(call,))
    return ScriptedTurn.text("done")


def call_cost(request: ModelRequest) -> float:
    """What one call of the scripted model costs (its input only is priced here)."""
    tokens = sum(estimate_tokens(m.content) for m in request.messages)
    return tokens * PRICE_PER_MTOK / 1_000_000


async def test_concurrent_runs_overshoot_a_daily_budget_by_at_most_their_calls_in_flight(
    server_factory: ServerFactory,
) -> None:
    """Three runs of one user at once, six model calls each: once the user's spend passes
    the budget every run stops after the call it had in flight, so the spend ends at most
    one call per run past the budget."""
    server = server_factory(
        models={
            "default": "scripted",
            "prices": [
                {"model": "scripted", "input_per_mtok": PRICE_PER_MTOK, "output_per_mtok": 0}
            ],
        },
        tiers={"free": {"max_concurrent_runs_per_user": 3, "runs_per_minute": 0}},
    )
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = calls_then_answers
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, admin = await make_user(http, "racer"), await make_user(http, "boss")
        grant_admin(server, admin.email)
        boss = {"Authorization": f"Bearer {await fresh_token(http, admin)}"}
        budget = 0.25
        await http.put(f"/admin/users/{user.id}/limits", json={"usd_per_day": budget}, headers=boss)
        socket = await open_socket(server, user.token)
        acks = [await socket.send_message(f"job {n}") for n in range(3)]
        endings: list[dict[str, Any]] = [
            (await socket.run_to_end(ack["run_id"]))[-1]["data"] for ack in acks
        ]
        stopped = [e for e in endings if e["outcome"] == "failed"]
        assert stopped and all(e["error"]["code"] == "cost_budget" for e in stopped)
        assert all(e["outcome"] in ("completed", "failed") for e in endings)
        spent = sum(e["usage"]["cost_usd"] for e in endings)
        most = max(call_cost(request) for request in model.requests)
        assert budget < spent <= budget + 3 * most, (spent, budget, most)
        me = (await http.get("/me", headers=user.auth)).json()
        assert abs(me["usage"]["today"]["cost_usd"] - spent) < 1e-6, "every call was recorded"
        await socket.close()
