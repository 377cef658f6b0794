"""GET /threads/search: full-text over the caller's own titles and messages, the same on
SQLite (FTS5) and PostgreSQL (tsvector); another user's words are never found."""

from __future__ import annotations

import uuid

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import ServerFactory
from tests.support import LiveServer, User, make_user, open_socket, run_on_own_loop


def tables_holding(server: LiveServer, needle: str) -> list[str]:
    """Every table of the server's database (search indexes and their shadow tables
    included) with a row whose values hold ``needle``, as text or bytes."""

    async def scan() -> list[str]:
        engine = create_async_engine(str(server.netra.db.url))
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
                holding = []
                for name in names:
                    for row in await conn.execute(sa.text(f'SELECT * FROM "{name}"')):  # noqa: S608
                        if needle in repr(tuple(row)):
                            holding.append(name)
                            break
                return holding
        finally:
            await engine.dispose()

    return run_on_own_loop(scan)


async def _chat(server: LiveServer, user: User, title: str, *said: str) -> str:
    """A thread titled ``title`` where ``user`` said each of ``said`` (each answered)."""
    http = user.http
    thread = await http.post("/threads", json={"title": title}, headers=user.auth)
    assert thread.status_code == 201, thread.text
    thread_id: str = thread.json()["id"]
    socket = await open_socket(server, user.token)
    for text in said:
        ack = await socket.send_message(text, thread_id=thread_id)
        assert ack["type"] == "ack", ack
        await socket.run_to_end(ack["run_id"])
    await socket.close()
    return thread_id


async def _search(user: User, q: str, **params: object) -> httpx.Response:
    return await user.http.get("/threads/search", params={"q": q, **params}, headers=user.auth)


async def test_search_finds_the_callers_own_words_and_never_another_users(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    canary = f"zebra{uuid.uuid4().hex[:10]}"
    hers = f"mole{uuid.uuid4().hex[:10]}"  # in the thread she deletes, and nowhere else
    async with httpx.AsyncClient(base_url=server.url) as http:
        alice, bob = await make_user(http, "alice"), await make_user(http, "bob")
        trip = await _chat(
            server, alice, "Trip to Lisbon", f"pack the {canary} hat", "what is 12*7?", hers
        )
        other = await _chat(server, alice, "Groceries", "buy bread and olives")
        await _chat(server, bob, f"Bob's {canary}", f"my own {canary} note")

        found = await _search(alice, canary.upper())
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["terms"] == [canary]
        assert {h["thread_id"] for h in body["items"]} == {trip}
        (asked,) = [h for h in body["items"] if h["role"] == "user"]
        assert asked["excerpt"] == f"pack the {canary} hat"
        assert asked["title"] == "Trip to Lisbon"
        assert [h["at"] for h in body["items"]] == sorted(
            (h["at"] for h in body["items"]), reverse=True
        ), "newest first"

        # A word's beginning finds it; every word must be there; titles count too.
        title_hit = (await _search(alice, "lisb")).json()["items"]
        assert [(h["thread_id"], h["message_id"]) for h in title_hit] == [(trip, None)]
        groceries = (await _search(alice, "bread olive")).json()["items"]
        assert {h["thread_id"] for h in groceries} == {other}
        assert (await _search(alice, "bread lisbon")).json()["items"] == []
        # Punctuation separates words: "12*7" is 12 and 7, in the question and its answer.
        numbers = (await _search(alice, "12*7")).json()
        assert numbers["terms"] == ["12", "7"]
        assert {h["role"] for h in numbers["items"]} == {"user", "assistant"}

        # Bob's words are his alone, and his search never reaches Alice's.
        bobs = (await _search(bob, canary)).json()["items"]
        assert bobs and {h["title"] for h in bobs} == {f"Bob's {canary}"}
        assert any(h["message_id"] is None for h in bobs), "his title matched too"
        assert (await _search(bob, "lisbon")).json()["items"] == []

        # A deleted thread's words are gone from the search with it.
        assert "messages" in tables_holding(server, hers)
        deleted = await http.delete(f"/threads/{trip}", headers=alice.auth)
        assert deleted.status_code == 204, deleted.text
        assert tables_holding(server, hers) == [], "the deleted thread left its words behind"
        assert (await _search(alice, canary)).json()["items"] == []
        assert (await _search(alice, "lisbon")).json()["items"] == []


async def test_a_search_without_words_is_refused_with_a_clear_error(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        for q in ("   ", "?!*", "_"):
            refused = await _search(user, q)
            assert refused.status_code == 422, (q, refused.text)
            assert refused.json()["error"]["code"] == "bad_query"
        for params in ({}, {"q": "x" * 201}, {"q": "ok", "limit": 0}, {"q": "ok", "limit": 51}):
            response = await http.get("/threads/search", params=params, headers=user.auth)
            assert response.status_code == 422, (params, response.text)
        assert (await http.get("/threads/search", params={"q": "x"})).status_code == 401


async def test_a_renamed_title_leaves_nothing_of_the_old_one(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    old = f"heron{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        created = await http.post("/threads", json={"title": f"Plans {old}"}, headers=user.auth)
        thread_id = created.json()["id"]
        assert [h["thread_id"] for h in (await _search(user, old)).json()["items"]] == [thread_id]
        renamed = await http.patch(
            f"/threads/{thread_id}", json={"title": "Plans"}, headers=user.auth
        )
        assert renamed.status_code == 200, renamed.text
        assert (await _search(user, old)).json()["items"] == []
        assert [h["thread_id"] for h in (await _search(user, "plans")).json()["items"]] == [
            thread_id
        ]
        assert tables_holding(server, old) == []
