"""No socket ever receives another user's event, and another user's ids are 404 everywhere."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from tests.support import LiveServer, Socket, User, make_user, open_socket


async def _chat(server: LiveServer, user: User, canary: str, runs: int) -> Socket:
    socket = await open_socket(server, user.token)
    thread_id = None
    for index in range(runs):
        fields = {"thread_id": thread_id} if thread_id else {}
        ack = await socket.send_message(
            f"secret {canary} number {index}: what is {index}+1?", **fields
        )
        thread_id = ack["thread_id"]
        await socket.run_to_end(ack["run_id"])
    return socket


async def test_five_users_with_concurrent_runs_never_see_each_others_events(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    users = [await make_user(http, f"iso{i}") for i in range(5)]
    canaries = {user.id: f"canary-{uuid.uuid4().hex}" for user in users}
    sockets = await asyncio.gather(
        *(_chat(server, user, canaries[user.id], runs=3) for user in users)
    )
    for user, socket in zip(users, sockets, strict=True):
        own_runs = {f["run_id"] for f in socket.frames if f["type"] == "ack"}
        assert len(own_runs) == 3
        events = socket.events()
        assert events, "no events received"
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "per-user seq has gaps"
        for event in events:
            assert event["run_id"] is None or event["run_id"] in own_runs
        text = json.dumps(socket.frames)
        assert canaries[user.id] in text  # the offline model quotes the message back
        for other, canary in canaries.items():
            if other != user.id:
                assert canary not in text
        await socket.close()


async def test_another_users_thread_and_run_are_not_found_on_every_route(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    owner, intruder = await make_user(http, "owner"), await make_user(http, "intruder")
    socket = await open_socket(server, owner.token)
    ack = await socket.send_message("what is 2+2?")
    await socket.run_to_end(ack["run_id"])
    thread_id, run_id = ack["thread_id"], ack["run_id"]

    routes = [
        ("GET", f"/threads/{thread_id}", None),
        ("GET", f"/threads/{thread_id}/messages", None),
        ("POST", f"/threads/{thread_id}/runs", {"content": "hello"}),
        ("GET", f"/runs/{run_id}", None),
        ("GET", f"/runs/{run_id}/events", None),
        ("POST", f"/runs/{run_id}/cancel", None),
    ]
    for method, path, body in routes:
        theirs = await http.request(method, path, json=body, headers=intruder.auth)
        missing = await http.request(
            method,
            path.replace(thread_id, "th_missing").replace(run_id, "run_missing"),
            json=body,
            headers=intruder.auth,
        )
        assert theirs.status_code == 404, (method, path, theirs.text)
        assert theirs.json()["error"]["code"] == "not_found"
        assert missing.status_code == 404
        assert theirs.json()["error"]["message"] == missing.json()["error"]["message"]
        mine = await http.request(method, path, json=body, headers=owner.auth)
        assert mine.status_code < 400, (method, path, mine.text)

    other_socket = await open_socket(server, intruder.token)
    await other_socket.send({"type": "cancel_run", "run_id": run_id, "ref": "c1"})
    error = await other_socket.until(lambda f: f["type"] == "error")
    assert error["code"] == "not_found" and error["ref"] == "c1"
    reply = await other_socket.send_message("hi", thread_id=thread_id)
    assert reply["type"] == "error" and reply["code"] == "not_found"
    assert (await http.get("/threads", headers=intruder.auth)).json()["items"] == []
    events = (await http.get("/events", headers=intruder.auth)).json()
    assert all(e["thread_id"] != thread_id for e in events["items"])
    await socket.close()
    await other_socket.close()
