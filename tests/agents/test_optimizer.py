"""The AI-spend domain against a real server: the optimizer agent answers "how can I cut my
AI costs?" from the user's own priced usage, and the spend tools see only that user's data."""

from __future__ import annotations

import httpx

from netra.model_ids import ModelId
from netra.models.prices import PriceTable
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.models.fake_providers import FakeProvider, openai_text
from tests.support import CanaryWatch, answer_text, assert_run_grammar, make_user, open_socket


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
        tools = [e["data"]["tool"] for e in events if e["type"] == "tool_completed"]
        assert tools == ["usage_report", "recommend_models"]
        report, advice = (e["data"]["result"] for e in events if e["type"] == "tool_completed")
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
