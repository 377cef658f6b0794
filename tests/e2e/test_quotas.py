"""Tier quotas at admission: refused with a clear error, nothing stored, others unaffected."""

from __future__ import annotations

from typing import Any

import httpx

from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.security.principals import fresh_token
from tests.support import grant_admin, make_user, open_socket


async def test_runs_per_minute_refuse_the_excess_with_retry_after(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(tiers={"free": {"runs_per_minute": 3}})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, other = await make_user(http, "busy"), await make_user(http, "calm")
        socket = await open_socket(server, user.token)
        acks = [await socket.send_message(f"hello {i}") for i in range(3)]
        assert all(ack["type"] == "ack" for ack in acks)
        refused = await socket.send_message("one too many", thread_id=acks[0]["thread_id"])
        assert refused["type"] == "error" and refused["code"] == "quota_exceeded"
        assert 0 < refused["retry_after"] <= 60
        http_refused = await http.post(
            f"/threads/{acks[0]['thread_id']}/runs", json={"content": "again"}, headers=user.auth
        )
        assert http_refused.status_code == 429
        assert 0 < int(http_refused.headers["Retry-After"]) <= 60
        assert http_refused.json()["error"]["code"] == "quota_exceeded"
        messages = await http.get(f"/threads/{acks[0]['thread_id']}/messages", headers=user.auth)
        assert [m["content"] for m in messages.json()["items"] if m["role"] == "user"] == [
            "hello 0"
        ]
        calm = await open_socket(server, other.token)
        assert (await calm.send_message("I am fine"))["type"] == "ack"
        warning = await socket.first(lambda f: f["type"] == "quota_warning")
        assert warning["data"] == {"quota": "runs_per_minute", "used": 3, "limit": 3}
        me = (await http.get("/me", headers=user.auth)).json()
        assert me["usage"]["runs_last_minute"] == 3
        assert me["limits"]["runs_per_minute"] == 3
        for live in (socket, calm):
            await live.close()


async def test_the_daily_token_allowance_stops_new_runs(server_factory: ServerFactory) -> None:
    server = server_factory(tiers={"free": {"tokens_per_day": 40}})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        first = await socket.send_message("tell me about yourself please")
        events = await socket.run_to_end(first["run_id"])
        used = events[-1]["data"]["usage"]
        assert used["input_tokens"] + used["output_tokens"] >= 40
        refused = await socket.send_message("and more", thread_id=first["thread_id"])
        assert refused["code"] == "quota_exceeded"
        assert "daily allowance" in refused["message"]
        me = (await http.get("/me", headers=user.auth)).json()
        assert me["usage"]["today"]["tokens"] == used["input_tokens"] + used["output_tokens"]
        assert me["usage"]["today"]["runs"] == 1
        await socket.close()


async def test_the_reject_policy_refuses_runs_past_the_concurrency_limit(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        models={"default": "scripted"},
        tiers={"free": {"max_concurrent_runs_per_user": 1, "concurrency_policy": "reject"}},
    )
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = lambda _request: ScriptedTurn.text("slow words here", delay_s=0.2)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        running = await socket.send_message("first")
        refused = await socket.send_message("second")
        assert refused["code"] == "quota_exceeded" and refused["retry_after"] > 0
        await socket.run_to_end(running["run_id"])
        assert (await socket.send_message("third"))["type"] == "ack"
        await socket.close()


async def test_a_tier_limits_agents_and_tools(server_factory: ServerFactory) -> None:
    server = server_factory(tiers={"free": {"allowed_tools": ["clock"]}})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        tools = (await http.get("/tools", headers=user.auth)).json()["items"]
        assert [tool["name"] for tool in tools] == ["clock"]
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("what is 12*7?")
        events = await socket.run_to_end(ack["run_id"])
        assert not [e for e in events if e["type"] == "tool_executing"]
        await socket.close()

    locked = server_factory(tiers={"free": {"allowed_agents": ["researcher"]}})
    async with httpx.AsyncClient(base_url=locked.url) as http:
        user = await make_user(http)
        assert (await http.get("/agents", headers=user.auth)).json()["items"] == []
        socket = await open_socket(locked, user.token)
        refused = await socket.send_message("hello")
        assert refused["code"] == "permission_denied"
        assert (await http.get("/threads", headers=user.auth)).json()["items"] == []
        await socket.close()


async def test_the_offline_model_is_priced_from_the_settings_and_its_spend_is_shown(
    server_factory: ServerFactory,
) -> None:
    """No API key needed to see spend: a price for ``offline`` costs its runs like any."""
    server = server_factory(
        models={"prices": [{"model": "offline", "input_per_mtok": 3.0, "output_per_mtok": 15.0}]}
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http, "priced")
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("what is 12*7?")
        events = await socket.run_to_end(ack["run_id"])
        usage = events[-1]["data"]["usage"]
        expected = (usage["input_tokens"] * 3.0 + usage["output_tokens"] * 15.0) / 1_000_000
        assert usage["cost_usd"] > 0
        assert abs(usage["cost_usd"] - expected) < 2e-8  # each call rounds to 8 places
        me = (await http.get("/me", headers=user.auth)).json()
        assert abs(me["usage"]["today"]["cost_usd"] - expected) < 1e-6
        await socket.close()


def own(user: dict[str, Any]) -> dict[str, Any]:
    """A user's own limits as shown: those it has (null: its tier's applies)."""
    return {name: value for name, value in user["limit_overrides"].items() if value is not None}


async def test_an_admin_sets_a_users_own_limits_and_its_open_socket_follows(
    server_factory: ServerFactory,
) -> None:
    """``PUT /admin/users/{id}/limits`` stores the user's own values over its tier's: shown
    in ``GET /me`` and ``GET /admin/users/{id}``, applied to the user's next message — on a
    socket it already holds too — and removed again with null."""
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, other = await make_user(http, "limited"), await make_user(http, "free")
        admin = await make_user(http, "boss")
        grant_admin(server, admin.email)
        admin_token = await fresh_token(http, admin)
        boss = {"Authorization": f"Bearer {admin_token}"}
        socket = await open_socket(server, user.token)
        first = await socket.send_message("a long enough message")
        assert first["type"] == "ack"

        path = f"/admin/users/{user.id}/limits"
        changed = await http.put(path, json={"max_message_chars": 10, "max_steps": 3}, headers=boss)
        assert changed.status_code == 200, changed.text
        assert own(changed.json()) == {"max_message_chars": 10, "max_steps": 3}
        assert changed.json()["limits"]["max_message_chars"] == 10
        refused = await socket.send_message("a long enough message")
        assert (refused["type"], refused["code"]) == ("error", "message_too_large")
        over_http = await http.post(
            f"/threads/{first['thread_id']}/runs",
            json={"content": "a long enough message"},
            headers=user.auth,
        )
        assert over_http.json()["error"]["code"] == "message_too_large"
        me = (await http.get("/me", headers=user.auth)).json()
        assert me["limits"]["max_message_chars"] == 10 and me["limits"]["max_steps"] == 3
        assert own(me) == {"max_message_chars": 10, "max_steps": 3}
        theirs = (await http.get("/me", headers=other.auth)).json()
        assert theirs["limits"]["max_message_chars"] > 10 and own(theirs) == {}

        cleared = await http.put(path, json={"max_message_chars": None}, headers=boss)
        assert own(cleared.json()) == {"max_steps": 3}
        assert (await socket.send_message("a long enough message"))["type"] == "ack"
        shown = (await http.get(f"/admin/users/{user.id}", headers=boss)).json()
        assert own(shown) == {"max_steps": 3} and shown["limits"]["max_steps"] == 3

        for body in ({"max_steps": 0}, {"colour": 1}, {}, {"max_steps": "many"}):
            bad = await http.put(path, json=body, headers=boss)
            assert bad.status_code == 422, (body, bad.text)
        missing = await http.put(
            "/admin/users/usr_nobody/limits", json={"max_steps": 1}, headers=boss
        )
        assert missing.status_code == 404
        not_admin = await http.put(path, json={"max_steps": 100}, headers=user.auth)
        assert not_admin.status_code == 403
        assert own((await http.get(f"/admin/users/{user.id}", headers=boss)).json()) == {
            "max_steps": 3
        }
        await socket.close()
