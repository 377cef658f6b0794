"""Lists come in pages: a bounded limit and an opaque cursor, stable while rows arrive."""

from __future__ import annotations

from datetime import timedelta

import httpx

from netra.context import UserExecutionContext
from netra.db.messages import MessageRepository
from netra.db.records import utcnow
from netra.db.repositories import ThreadRepository
from netra.db.sql import Tx
from tests.conftest import ServerFactory
from tests.support import make_user, open_socket


async def test_threads_come_in_pages_that_hold_still_while_threads_are_added(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        auth = user.auth
        for number in range(7):
            created = await http.post("/threads", json={"title": f"chat {number}"}, headers=auth)
            assert created.status_code == 201, created.text
        whole = (await http.get("/threads", headers=auth)).json()
        assert whole["next_cursor"] is None
        order = [thread["id"] for thread in whole["items"]]
        assert len(order) == 7

        first = (await http.get("/threads", params={"limit": 3}, headers=auth)).json()
        assert [t["id"] for t in first["items"]] == order[:3]
        # A thread created now goes first in the order; the next page is where it was.
        await http.post("/threads", json={"title": "newer"}, headers=auth)
        cursor = first["next_cursor"]
        second = (
            await http.get("/threads", params={"limit": 3, "cursor": cursor}, headers=auth)
        ).json()
        assert [t["id"] for t in second["items"]] == order[3:6]
        cursor = second["next_cursor"]
        last = (
            await http.get("/threads", params={"limit": 3, "cursor": cursor}, headers=auth)
        ).json()
        assert [t["id"] for t in last["items"]] == order[6:]
        assert last["next_cursor"] is None

        # Another user's cursor position lists only that user's threads.
        other = await make_user(http, "other")
        theirs = await http.get(
            "/threads",
            params={"cursor": first["next_cursor"]},
            headers=other.auth,
        )
        assert theirs.status_code == 200 and theirs.json()["items"] == []


async def test_a_cursor_or_limit_the_server_did_not_give_is_a_clear_error(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        auth = user.auth
        for cursor in ("not-a-cursor", "WyJ4Il0", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgImlkIl0"):
            response = await http.get("/threads", params={"cursor": cursor}, headers=auth)
            assert response.status_code == 422, (cursor, response.text)
            assert response.json()["error"]["code"] == "invalid_cursor"
        for limit in (0, 201, -1):
            response = await http.get("/threads", params={"limit": limit}, headers=auth)
            assert response.status_code == 422, (limit, response.text)
            assert response.json()["error"]["code"] == "invalid_request"


async def test_a_long_thread_reads_in_pages_of_turns_back_to_its_start(
    server_factory: ServerFactory,
) -> None:
    """A thread past the page limit: the newest turns first, then older pages back to the
    first turn; each turn whole (the question, then its answer); then forward again."""
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        thread_id = None
        for number in range(7):
            extra = {"thread_id": thread_id} if thread_id else {}
            ack = await socket.send_message(f"what is {number}*7?", **extra)
            thread_id = ack["thread_id"]
            await socket.run_to_end(ack["run_id"])
        path = f"/threads/{thread_id}/messages"

        def questions(page: dict[str, object]) -> list[str]:
            items = page["items"]
            assert isinstance(items, list)
            assert [m["role"] for m in items] == ["user", "assistant"] * (len(items) // 2)
            assert all(
                q["run_id"] == a["run_id"] for q, a in zip(items[::2], items[1::2], strict=True)
            )
            return [m["content"] for m in items[::2]]

        newest = (await http.get(path, params={"limit": 3}, headers=user.auth)).json()
        assert questions(newest) == [f"what is {n}*7?" for n in (4, 5, 6)]
        assert newest["newer_cursor"] is None
        middle = (
            await http.get(
                path, params={"limit": 3, "before": newest["older_cursor"]}, headers=user.auth
            )
        ).json()
        assert questions(middle) == [f"what is {n}*7?" for n in (1, 2, 3)]
        first = (
            await http.get(
                path, params={"limit": 3, "before": middle["older_cursor"]}, headers=user.auth
            )
        ).json()
        assert questions(first) == ["what is 0*7?"]
        assert first["older_cursor"] is None
        forward = (
            await http.get(
                path, params={"limit": 5, "after": first["newer_cursor"]}, headers=user.auth
            )
        ).json()
        assert questions(forward) == [f"what is {n}*7?" for n in (1, 2, 3, 4, 5)]
        assert forward["newer_cursor"] is not None
        whole = (await http.get(path, headers=user.auth)).json()
        assert questions(whole) == [f"what is {n}*7?" for n in range(7)]
        assert whole["older_cursor"] is None and whole["newer_cursor"] is None
        both = await http.get(
            path,
            params={"before": newest["older_cursor"], "after": first["newer_cursor"]},
            headers=user.auth,
        )
        assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_cursor"
        await socket.close()


async def test_a_threads_runs_and_events_come_in_pages_and_only_its_own(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        elsewhere = await socket.send_message("what is 1*7?")
        await socket.run_to_end(elsewhere["run_id"])
        thread_id, run_ids = None, []
        for number in range(3):
            extra = {"thread_id": thread_id} if thread_id else {}
            ack = await socket.send_message(f"what is {number}*7?", **extra)
            thread_id = ack["thread_id"]
            run_ids.append(ack["run_id"])
            await socket.run_to_end(ack["run_id"])
        await socket.close()

        runs = f"/threads/{thread_id}/runs"
        first = (await http.get(runs, params={"limit": 2}, headers=user.auth)).json()
        assert [r["id"] for r in first["items"]] == run_ids[:0:-1]
        rest = (
            await http.get(
                runs, params={"limit": 2, "cursor": first["next_cursor"]}, headers=user.auth
            )
        ).json()
        assert [r["id"] for r in rest["items"]] == run_ids[:1]
        assert rest["next_cursor"] is None

        events = f"/threads/{thread_id}/events"
        every = (await http.get(events, headers=user.auth)).json()["items"]
        assert {e["thread_id"] for e in every} == {thread_id}
        assert {e["run_id"] for e in every if e["run_id"]} == set(run_ids)
        seqs = [e["seq"] for e in every]
        assert seqs == sorted(seqs)
        later = (
            await http.get(events, params={"after_seq": seqs[2], "limit": 3}, headers=user.auth)
        ).json()["items"]
        assert [e["seq"] for e in later] == seqs[3:6]


async def test_a_thread_of_1500_messages_pages_completely_both_ways(
    server_factory: ServerFactory,
) -> None:
    """750 turns, read 200 turns a page: back from the newest to the first, then forward
    from the first to the newest — every message once, in turn order, either way."""
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http, "pager")
        ctx = UserExecutionContext(user_id=(await http.get("/me", headers=user.auth)).json()["id"])
        start = utcnow() - timedelta(hours=1)

        def store() -> Tx[str]:
            thread = yield from ThreadRepository(ctx).create(title="long", agent="assistant")
            messages = MessageRepository(ctx)
            parent_id = None
            for n in range(1500):
                message = yield from messages.add(
                    thread_id=thread.id,
                    role="assistant" if n % 2 else "user",
                    content=f"message {n}",
                    parent_id=parent_id,
                    at=start + timedelta(milliseconds=n),
                )
                parent_id = message.id
            assert parent_id is not None
            yield from ThreadRepository(ctx).touch(thread.id, leaf=parent_id)
            return thread.id

        async def stored() -> str:
            return await server.netra.db.transact(store())

        thread_id = await server.call(stored)
        path = f"/threads/{thread_id}/messages"
        expected = [f"message {n}" for n in range(1500)]

        backward: list[str] = []
        params: dict[str, str | int] = {"limit": 200}
        pages = []
        while True:
            page = (await http.get(path, params=params, headers=user.auth)).json()
            pages.append(page)
            backward[:0] = [m["content"] for m in page["items"]]
            if page["older_cursor"] is None:
                break
            params = {"limit": 200, "before": page["older_cursor"]}
        assert backward == expected
        assert len(pages) == 4  # 200 + 200 + 200 + 150 turns

        forward = [m["content"] for m in pages[-1]["items"]]
        cursor = pages[-1]["newer_cursor"]
        while cursor is not None:
            page = (
                await http.get(path, params={"limit": 200, "after": cursor}, headers=user.auth)
            ).json()
            forward += [m["content"] for m in page["items"]]
            cursor = page["newer_cursor"]
        assert forward == expected


async def test_250_threads_page_exactly_once_each_while_threads_are_created(
    server_factory: ServerFactory,
) -> None:
    """Paging 20 at a time through 250 threads while a new thread is created before every
    page: each of the 250 is listed exactly once, in order, and nothing twice."""
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http, "many")
        ctx = UserExecutionContext(user_id=(await http.get("/me", headers=user.auth)).json()["id"])
        start = utcnow() - timedelta(hours=1)

        def store() -> Tx[None]:
            threads = ThreadRepository(ctx)
            for n in range(250):
                yield from threads.create(
                    title=f"chat {n}", agent="assistant", at=start + timedelta(seconds=n)
                )

        async def stored() -> None:
            await server.netra.db.transact(store())

        await server.call(stored)
        seen: list[str] = []
        params: dict[str, str | int] = {"limit": 20}
        while True:
            created = await http.post("/threads", json={"title": "newer"}, headers=user.auth)
            assert created.status_code == 201
            page = (await http.get("/threads", params=params, headers=user.auth)).json()
            seen += [thread["title"] for thread in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 20, "cursor": page["next_cursor"]}
        old = [title for title in seen if title != "newer"]
        assert old == [f"chat {n}" for n in reversed(range(250))]
        assert seen.count("newer") == 1, "only the one created before the first page"
