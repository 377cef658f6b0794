"""The AI-spend domain against a real server: the optimizer agent answers "how can I cut my
AI costs?" from the user's own priced usage, and the spend tools see only that user's data."""

from __future__ import annotations

from typing import Any

import httpx

from netra.agents.optimizer import TEAM
from netra.model_ids import ModelId
from netra.models.prices import PriceTable
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.models.fake_providers import FakeProvider, openai_text
from tests.security.principals import fresh_token
from tests.support import (
    CanaryWatch,
    Socket,
    answer_text,
    assert_run_grammar,
    grant_admin,
    make_user,
    open_socket,
)


def tool_result(socket: Socket, run_id: str) -> dict[str, Any]:
    """The result of the one tool call of a run (an analyst of the optimizer's team)."""
    (done,) = [e for e in socket.run_events(run_id) if e["type"] == "tool_completed"]
    result: dict[str, Any] = done["data"]["result"]
    return result


async def test_the_optimizer_ranks_cheaper_models_for_what_the_user_spent(
    server_factory: ServerFactory, provider: FakeProvider, canaries: CanaryWatch
) -> None:
    server = server_factory(
        models={
            "default": "openai:gpt-4o",
            "providers": {
                "openai": {
                    "base_url": provider.openai_url,
                    "api_key": canaries.model_api_key,
                    "max_retries": 0,
                }
            },
        }
    )
    provider.push(openai_text("first answer", usage=(200, 100)))
    provider.push(openai_text("second answer", usage=(200, 100)))
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, bystander = await make_user(http), await make_user(http, "bystander")
        socket = await open_socket(server, user.token)
        for question in ("write me a poem", "and another"):
            ack = await socket.send_message(question)
            await socket.run_to_end(ack["run_id"])

        ack = await socket.send_message("How can I cut my AI costs?", agent="optimizer")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        team = [e["data"]["result"] for e in events if e["type"] == "tool_completed"]
        assert [member["agent"] for member in team] == list(TEAM)
        report, advice = (tool_result(socket, member["run_id"]) for member in team[:2])
        for member in team:  # each a child run of its own in the stream
            child = socket.run_events(member["run_id"])
            assert_run_grammar(child)
            assert child[0]["data"]["parent_run_id"] == ack["run_id"]
        gpt4o = PriceTable.shipped().lookup(ModelId.parse("openai:gpt-4o"))
        assert gpt4o is not None
        spent = gpt4o.cost(400, 200)
        assert report["totals"]["runs"] == 2
        assert report["totals"]["cost_usd"] == round(spent, 6)
        assert [m["model"] for m in report["by_model"]] == ["openai:gpt-4o"]
        ranked = advice["recommendations"]
        assert ranked and [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
        savings = [r["savings_usd"] for r in ranked]
        assert savings == sorted(savings, reverse=True)
        best = ranked[0]
        cheaper = PriceTable.shipped().lookup(ModelId.parse(best["switch_to"]))
        assert cheaper is not None
        assert best["estimated_cost_usd"] == round(cheaper.cost(400, 200), 6)
        assert best["savings_usd"] == round(spent - cheaper.cost(400, 200), 6)
        answer = answer_text(events)
        assert answer == team[2]["answer"], "the reporter's answer is the optimizer's"
        assert (
            "2 model runs" in answer and f"1. Move openai:gpt-4o to {best['switch_to']}" in answer
        )
        assert len(provider.received) == 2  # the optimizer computed, it did not ask a model

        their_socket = await open_socket(server, bystander.token)
        theirs = await their_socket.send_message("what did I spend?", agent="optimizer")
        their_events = await their_socket.run_to_end(theirs["run_id"])
        assert "not used any model" in answer_text(their_events)
        await their_socket.close()
        await socket.close()


async def test_with_the_offline_model_there_is_nothing_to_save(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("what is 2+2?")
        await socket.run_to_end(ack["run_id"])
        ack = await socket.send_message("how can I save money on AI?", agent="optimizer")
        events = await socket.run_to_end(ack["run_id"])
        assert "nothing to save" in answer_text(events)
        off_topic = await socket.send_message("tell me a joke", agent="optimizer")
        events = await socket.run_to_end(off_topic["run_id"])
        assert not [e for e in events if e["type"] == "tool_executing"]
        assert "AI spend" in answer_text(events)
        await socket.close()


async def test_search_threads_finds_only_the_callers_messages(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)

    def respond(request: object) -> ScriptedTurn:
        last = request.messages[-1]  # type: ignore[attr-defined]
        if last.role == "user" and last.content.startswith("find"):
            return ScriptedTurn.call("search_threads", {"query": "zebra_50%"})
        return ScriptedTurn.text("noted")

    model.responder = respond
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, other = await make_user(http), await make_user(http, "other")
        for who, text in ((user, "my zebra_50% plan"), (other, "their zebra_50% secret")):
            socket = await open_socket(server, who.token)
            ack = await socket.send_message(text)
            await socket.run_to_end(ack["run_id"])
            await socket.close()
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("find my zebra notes")
        events = await socket.run_to_end(ack["run_id"])
        found = next(e for e in events if e["type"] == "tool_completed")["data"]["result"]
        snippets = [hit["snippet"] for hit in found]
        assert "my zebra_50% plan" in snippets and not any("secret" in s for s in snippets)
        await socket.close()


async def test_for_an_organisations_admin_the_team_works_across_its_members(
    server_factory: ServerFactory, provider: FakeProvider, canaries: CanaryWatch
) -> None:
    """Two members' spend on gpt-4o, one prompt of which outgrows gpt-3.5-turbo's window:
    the organisation's admin gets every member's figures, exact, the switches that fit
    that usage (never gpt-3.5-turbo) and what trimming the long prompts would save; a plain
    member gets their own."""
    server = server_factory(
        models={
            "default": "openai:gpt-4o",
            "providers": {
                "openai": {
                    "base_url": provider.openai_url,
                    "api_key": canaries.model_api_key,
                    "max_retries": 0,
                }
            },
        }
    )
    provider.push(openai_text("long", usage=(20_000, 100)))
    provider.push(openai_text("short", usage=(1_000, 50)))
    async with httpx.AsyncClient(base_url=server.url) as http:
        ann, bob, boss = [await make_user(http, who) for who in ("ann", "bob", "boss")]
        grant_admin(server, boss.email)
        admin = {"Authorization": f"Bearer {await fresh_token(http, boss)}"}
        org = (await http.post("/admin/orgs", json={"name": "Acme"}, headers=admin)).json()
        for user, role in ((ann, "admin"), (bob, "member")):
            await http.put(
                f"/admin/orgs/{org['id']}/members/{user.id}", json={"role": role}, headers=admin
            )
        for user, question in ((ann, "summarise this long report"), (bob, "hi")):
            socket = await open_socket(server, user.token)
            ack = await socket.send_message(question)
            await socket.run_to_end(ack["run_id"])
            await socket.close()

        socket = await open_socket(server, ann.token)
        ack = await socket.send_message("How can our team cut its AI costs?", agent="optimizer")
        events = await socket.run_to_end(ack["run_id"])
        assert events[-1]["data"]["outcome"] == "completed", events[-1]
        team = [e["data"]["result"] for e in events if e["type"] == "tool_completed"]
        report, advice = (tool_result(socket, member["run_id"]) for member in team[:2])
        gpt4o = PriceTable.shipped().lookup(ModelId.parse("openai:gpt-4o"))
        assert gpt4o is not None
        assert report["scope"] == "org" and report["totals"]["runs"] == 2
        assert report["totals"]["cost_usd"] == round(
            gpt4o.cost(20_000, 100) + gpt4o.cost(1_000, 50), 6
        )
        assert {u["user"]: u["cost_usd"] for u in report["by_user"]} == {
            ann.email: round(gpt4o.cost(20_000, 100), 6),
            bob.email: round(gpt4o.cost(1_000, 50), 6),
        }
        switches = [r["switch_to"] for r in advice["recommendations"]]
        assert switches and "openai:gpt-3.5-turbo" not in switches, switches
        assert all(r["context_window"] >= 20_000 for r in advice["recommendations"])
        (trim,) = advice["trimming"]
        assert (trim["calls_over"], trim["input_tokens_over"]) == (1, 12_000)
        assert trim["savings_usd"] == round(12_000 * gpt4o.input_per_mtok / 1_000_000, 6)
        answer = answer_text(events)
        assert "your organisation's members made 2 model runs" in answer
        assert ann.email in answer and bob.email in answer and "Trim openai:gpt-4o" in answer
        await socket.close()

        socket = await open_socket(server, bob.token)
        ack = await socket.send_message("what did I spend?", agent="optimizer")
        events = await socket.run_to_end(ack["run_id"])
        team = [e["data"]["result"] for e in events if e["type"] == "tool_completed"]
        mine = tool_result(socket, team[0]["run_id"])
        assert mine["scope"] == "me" and mine["totals"]["runs"] == 1
        assert "you made 1 model runs" in answer_text(events) and ann.email not in str(events)
        await socket.close()


async def test_the_optimizers_team_is_started_by_the_optimizer_only(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        listed = (await http.get("/agents", headers=user.auth)).json()["items"]
        assert not {a["name"] for a in listed} & set(TEAM)
        thread = await http.post("/threads", json={"agent": "spend-data"}, headers=user.auth)
        assert thread.status_code == 403
        socket = await open_socket(server, user.token)
        refused = await socket.send_message("what did I spend?", agent="spend-report")
        assert (refused["type"], refused["code"]) == ("error", "permission_denied")
        await socket.close()
