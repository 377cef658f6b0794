"""Lists come in pages: a bounded limit and an opaque cursor, stable while rows arrive."""

from __future__ import annotations

import httpx

from tests.conftest import ServerFactory
from tests.support import make_user


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
