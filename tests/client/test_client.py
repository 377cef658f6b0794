"""``netra.client`` against a real server: every event once and in order across dropped
sockets, one stored message per retried send, approvals, cancel, paging, API keys."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from netra.client import (
    ApiError,
    AsyncClient,
    AuthenticationError,
    Client,
    Event,
    Run,
)
from tests.client.proxy import CuttingProxy, cutting_proxy
from tests.conftest import ServerFactory
from tests.support import (
    LiveServer,
    User,
    add_mailer,
    assert_run_grammar,
    eventually,
    make_key,
    make_user,
    stored_events,
)

PROMPTS = ("what is 12*7?", "count to 40", "what is 3+4 and what time is it?")


@pytest.fixture
def slow_server(server_factory: ServerFactory) -> LiveServer:
    """Runs that last long enough to be cut into: the offline model pauses between chunks."""
    return server_factory(models={"offline_chunk_delay_ms": 3})


@pytest.fixture
async def user(slow_server: LiveServer) -> AsyncIterator[User]:
    async with httpx.AsyncClient(base_url=slow_server.url, timeout=10) as http:
        yield await make_user(http)


@pytest.fixture
async def proxy(slow_server: LiveServer) -> AsyncIterator[CuttingProxy]:
    async with cutting_proxy(slow_server.url) as proxy:
        yield proxy


def _as_json(events: list[Event]) -> list[tuple[int, str, object]]:
    return [(e.seq, e.type, e.data) for e in events]


async def _stored_run(user: User, run_id: str) -> list[Event]:
    return [
        Event.from_json(e) for e in await stored_events(user.http, user) if e["run_id"] == run_id
    ]


async def test_dropped_sockets_never_lose_or_repeat_an_event(
    user: User, proxy: CuttingProxy
) -> None:
    seed = int(os.environ.get("NETRA_TEST_SEED") or random.randrange(2**32))
    print(f"seed {seed} (NETRA_TEST_SEED={seed} repeats this test)")
    rng = random.Random(seed)
    runs: list[Run] = []
    async with AsyncClient(proxy.url, reconnect_timeout=30) as client:
        await client.login(user.email, user.password)
        for _ in range(20):
            sending = asyncio.create_task(client.send(rng.choice(PROMPTS)))
            if rng.random() < 0.3:  # while the send is on its way, or its ack
                await asyncio.sleep(0)
                proxy.cut()
            run = await sending
            async for _event in run:
                if rng.random() < 0.15:
                    proxy.cut()
            runs.append(run)
    assert proxy.cuts > 5, proxy.cuts
    for run in runs:
        assert run.outcome == "completed", run
        stored = await _stored_run(user, run.id)
        assert _as_json(run.events) == _as_json(stored)
        assert_run_grammar(
            [{"type": e.type, "seq": e.seq, "ts": "", "data": e.data} for e in run.events]
        )
        messages = (
            await user.http.get(f"/threads/{run.thread_id}/messages", headers=user.auth)
        ).json()
        assert [m["role"] for m in messages["items"]] == ["user", "assistant"]


async def test_a_send_retried_after_a_drop_stores_one_message(
    user: User, proxy: CuttingProxy
) -> None:
    async with AsyncClient(proxy.url) as client:
        await client.login(user.email, user.password)
        thread = await client.create_thread()
        await client.connect()
        proxy.hold()  # the server's answers wait in the proxy, the ack among them
        sending = asyncio.create_task(client.send("what is 12*7?", thread.id))

        async def stored() -> bool:
            page = await user.http.get(f"/threads/{thread.id}/messages", headers=user.auth)
            return len(page.json()["items"]) > 0

        await eventually(stored, "the message stored")
        proxy.cut()  # the ack is lost: the client sends the same frame again
        run = await asyncio.wait_for(sending, 30)
        await run.wait()
        assert "84" in run.text
    messages = [m async for m in _messages(user, thread.id)]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert proxy.cuts == 1


async def _messages(user: User, thread_id: str) -> AsyncIterator[dict[str, object]]:
    page = await user.http.get(f"/threads/{thread_id}/messages", headers=user.auth)
    for message in page.json()["items"]:
        yield message


async def test_approve_and_deny_tool_calls(slow_server: LiveServer, user: User) -> None:
    add_mailer(slow_server)
    async with AsyncClient(slow_server.url) as client:
        await client.login(user.email, user.password)
        for approve, answer in ((True, "sent"), (False, "sent")):
            run = await client.send("mail the boss", agent="mailer")
            async for event in run:
                if event.type == "approval_required":
                    decision = await client.approve(run.id, event.data["tool_call_id"], approve)
                    assert decision == ("approved" if approve else "denied")
            assert run.outcome == "completed"
            assert answer in run.text
            completed = next(e for e in run.events if e.type == "tool_completed")
            assert completed.data["status"] == ("ok" if approve else "error")


async def test_cancel_ends_a_run_cancelled(user: User, slow_server: LiveServer) -> None:
    async with AsyncClient(slow_server.url) as client:
        await client.login(user.email, user.password)
        run = await client.send("count to 10000")
        async for event in run:
            if event.type == "message_delta" and len(run.events) == 5:
                await client.cancel(run.id)
        assert run.outcome == "cancelled"
        assert "10000" not in run.text


async def test_threads_and_messages_are_read_over_every_page(
    user: User, slow_server: LiveServer
) -> None:
    async with AsyncClient(slow_server.url) as client:
        await client.login(user.email, user.password)
        made = [await client.create_thread(title=f"thread {i}") for i in range(7)]
        listed = [t.id async for t in client.threads(page_size=3)]
        assert listed == [t.id for t in reversed(made)]
        thread_id = made[0].id
        for i in range(4):
            await (await client.send(f"what is {i}+1?", thread_id)).wait()
        messages = [m async for m in client.messages(thread_id, page_size=3)]
        assert [m.role for m in messages] == ["user", "assistant"] * 4
        assert [m.content for m in messages if m.role == "user"] == [
            f"what is {i}+1?" for i in range(4)
        ]


async def test_an_api_key_signs_in_and_a_refused_one_says_so(
    slow_server: LiveServer, user: User
) -> None:
    key = await make_key(slow_server, user)
    async with AsyncClient(slow_server.url, api_key=key["secret"]) as client:
        run = await client.send("what is 12*7?")
        await run.wait()
        assert "84" in run.text
    reader = await make_key(slow_server, user, ["threads:read"])
    async with AsyncClient(slow_server.url, api_key=reader["secret"]) as client:
        with pytest.raises(ApiError) as refused:
            await client.send("what is 12*7?")
        assert refused.value.code == "insufficient_scope"
    revoked = await user.http.delete(f"/me/api-keys/{key['id']}", headers=user.auth)
    assert revoked.status_code == 204
    async with AsyncClient(slow_server.url, api_key=key["secret"]) as client:
        with pytest.raises(AuthenticationError):
            await client.send("what is 12*7?")
        with pytest.raises(AuthenticationError):
            [t async for t in client.threads()]
    async with AsyncClient(slow_server.url) as client:
        with pytest.raises(AuthenticationError):
            await client.login(user.email, "not the password")


async def test_a_resume_point_the_server_cannot_serve_goes_on_from_its_last_seq(
    slow_server: LiveServer, user: User
) -> None:
    async with AsyncClient(slow_server.url, after_seq=10**12) as client:
        await client.login(user.email, user.password)
        run = await client.send("what is 12*7?")
        await run.wait()
        assert _as_json(run.events) == _as_json(await _stored_run(user, run.id))
        assert client.last_seq == run.events[-1].seq


async def test_an_expired_access_token_is_renewed_with_the_refresh_token(
    slow_server: LiveServer, user: User
) -> None:
    login = await user.http.post(
        "/auth/login", json={"email": user.email, "password": user.password}
    )
    pair = login.json()
    saved: list[str] = []
    async with AsyncClient(
        slow_server.url,
        access_token="not-a-valid-token",
        refresh_token=pair["refresh_token"],
        on_tokens=lambda tokens: saved.append(tokens.access_token),
    ) as client:
        run = await client.send("what is 12*7?")
        await run.wait()
        assert len(saved) == 1 and client.tokens is not None
        assert client.tokens.access_token == saved[0]


async def test_the_sync_client_follows_a_run(slow_server: LiveServer, user: User) -> None:
    def chat() -> tuple[list[str], list[str]]:
        with Client(slow_server.url) as client:
            client.login(user.email, user.password)
            run = client.send("what is 12*7?")
            types = [event.type for event in run]
            titles = [t.title for t in client.threads()]
            return types, [run.text, *titles]

    types, (text, *titles) = await asyncio.to_thread(chat)
    assert types[0] == "agent_started" and types[-1] == "agent_completed"
    assert "tool_executing" in types and "84" in text
    assert titles == ["what is 12*7?"]
