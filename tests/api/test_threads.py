"""Managing threads: rename and delete, seen by every open tab, never by another user."""

from __future__ import annotations

import asyncio

import httpx

from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import tool
from tests.conftest import ServerFactory
from tests.support import make_user, open_socket


async def test_a_renamed_thread_is_announced_and_only_its_owner_may_rename_it(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        owner, other = await make_user(http, "owner"), await make_user(http, "other")
        thread = (await http.post("/threads", json={"title": "old"}, headers=owner.auth)).json()
        socket = await open_socket(server, owner.token)
        renamed = await http.patch(
            f"/threads/{thread['id']}", json={"title": "Trip to Porto"}, headers=owner.auth
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["title"] == "Trip to Porto"
        assert renamed.json()["updated_at"] == thread["updated_at"]  # not new activity
        event = await socket.first(lambda f: f["type"] == "thread_updated")
        assert event["thread_id"] == thread["id"]
        assert event["data"]["thread"]["title"] == "Trip to Porto"
        got = await http.get(f"/threads/{thread['id']}", headers=owner.auth)
        assert got.json()["title"] == "Trip to Porto"

        theirs = await http.patch(
            f"/threads/{thread['id']}", json={"title": "mine now"}, headers=other.auth
        )
        assert theirs.status_code == 404
        for body in ({"title": ""}, {"title": "x" * 201}, {"title": "ok", "colour": "red"}, {}):
            refused = await http.patch(f"/threads/{thread['id']}", json=body, headers=owner.auth)
            assert refused.status_code == 422, (body, refused.text)
        got = await http.get(f"/threads/{thread['id']}", headers=owner.auth)
        assert got.json()["title"] == "Trip to Porto"
        await socket.close()


async def test_deleting_a_thread_cancels_its_run_and_leaves_nothing_of_it(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    started = asyncio.Event()

    @tool(description="Wait for a long time.")
    async def wait(seconds: float) -> str:
        started.set()
        await asyncio.sleep(seconds)
        return "done"

    server.netra.tools.register("wait", wait)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.push(ScriptedTurn.text("kept answer"), ScriptedTurn.call("wait", {"seconds": 60}))
    async with httpx.AsyncClient(base_url=server.url) as http:
        owner, other = await make_user(http, "owner"), await make_user(http, "other")
        socket = await open_socket(server, owner.token)
        kept = await socket.send_message("a thread that stays")
        await socket.run_to_end(kept["run_id"])
        doomed = await socket.send_message("a thread to delete")
        await socket.first(lambda f: f["type"] == "tool_executing")

        refused = await http.delete(f"/threads/{doomed['thread_id']}", headers=other.auth)
        assert refused.status_code == 404
        deleted = await http.delete(f"/threads/{doomed['thread_id']}", headers=owner.auth)
        assert deleted.status_code == 204, deleted.text

        gone = await socket.first(lambda f: f["type"] == "thread_deleted")
        assert gone["thread_id"] == gone["data"]["thread_id"] == doomed["thread_id"]
        ended = await socket.first(
            lambda f: f["type"] == "agent_completed" and f["run_id"] == doomed["run_id"]
        )
        assert ended["data"]["outcome"] == "cancelled"
        assert ended["seq"] < gone["seq"], "the run ended before its thread went"

        thread_path = f"/threads/{doomed['thread_id']}"
        for path in (thread_path, f"{thread_path}/messages", f"/runs/{doomed['run_id']}"):
            assert (await http.get(path, headers=owner.auth)).status_code == 404, path
        listed = (await http.get("/threads", headers=owner.auth)).json()["items"]
        assert [t["id"] for t in listed] == [kept["thread_id"]]
        log = (await http.get("/events", headers=owner.auth)).json()["items"]
        of_it = [e["type"] for e in log if e["thread_id"] == doomed["thread_id"]]
        assert of_it == ["thread_deleted"]
        assert any(e["thread_id"] == kept["thread_id"] for e in log)
        # Deleting it again: it is gone.
        again = await http.delete(f"/threads/{doomed['thread_id']}", headers=owner.auth)
        assert again.status_code == 404
        await socket.close()


async def test_pinned_and_archived_threads_are_listed_apart_and_every_tab_hears_of_it(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        owner, other = await make_user(http, "owner"), await make_user(http, "other")
        socket = await open_socket(server, owner.token)
        ids = []
        for title in ("first", "second", "third"):
            created = await http.post("/threads", json={"title": title}, headers=owner.auth)
            ids.append(created.json()["id"])
        first, second, third = ids

        def listed(**params: object) -> list[str]:
            return [t["title"] for t in params.pop("_page")["items"]]  # type: ignore[index]

        async def titles(**params: object) -> list[str]:
            page = await http.get("/threads", params=params, headers=owner.auth)
            assert page.status_code == 200, page.text
            return listed(_page=page.json())

        pinned = await http.patch(f"/threads/{first}", json={"pinned": True}, headers=owner.auth)
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["pinned"] is True and pinned.json()["title"] == "first"
        note = await socket.first(lambda f: f["type"] == "thread_updated")
        assert note["data"]["thread"]["pinned"] is True
        archived = await http.patch(
            f"/threads/{second}", json={"archived": True}, headers=owner.auth
        )
        assert archived.json()["archived"] is True

        assert await titles() == ["third", "first"]
        assert await titles(pinned="true") == ["first"]
        assert await titles(pinned="false") == ["third"]
        assert await titles(archived="true") == ["second"]
        # A pinned thread keeps its place in time: pinning is not activity.
        assert (
            pinned.json()["updated_at"]
            == (await http.get(f"/threads/{first}", headers=owner.auth)).json()["updated_at"]
        )

        back = await http.patch(
            f"/threads/{second}",
            json={"archived": False, "pinned": True, "title": "back"},
            headers=owner.auth,
        )
        assert (back.json()["archived"], back.json()["pinned"], back.json()["title"]) == (
            False,
            True,
            "back",
        )
        assert await titles(pinned="true") == ["back", "first"]
        assert await titles(archived="true") == []

        for body in ({}, {"pinned": None}, {"pinned": "yes please"}, {"archived": 1.5}):
            refused = await http.patch(f"/threads/{third}", json=body, headers=owner.auth)
            assert refused.status_code == 422, (body, refused.text)
        stranger = await http.patch(f"/threads/{third}", json={"pinned": True}, headers=other.auth)
        assert stranger.status_code == 404
        assert (await http.get("/threads", params={"pinned": "true"}, headers=other.auth)).json()[
            "items"
        ] == []
        await socket.close()
