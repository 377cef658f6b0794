"""The WebSocket side of isolation and abuse limits, against a real server.

Every kind of caller at the handshake; every frame that names an id, aimed at another
user's objects; the Origin allowlist; the per-socket frame rate; nesting and size limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerFactory
from tests.security.principals import BAD, GOOD, KEYS, build_principals
from tests.support import LiveServer, open_socket


async def _close_code(server: LiveServer, token: str | None, **kwargs: object) -> int | None:
    """The close code the server answers with, or None when it says ``connected``."""
    offered = ["bearer", token] if token is not None else None
    try:
        async with connect(server.ws_url, subprotocols=offered, **kwargs) as conn:  # type: ignore[arg-type]
            frame = json.loads(await asyncio.wait_for(conn.recv(), 10))
            assert frame["type"] == "connected"
            return None
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1


async def test_handshake_and_id_frames_for_every_kind_of_caller(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        who = await build_principals(server, http)
        for principal in BAD:
            assert await _close_code(server, who.tokens[principal]) == 1008, principal
        for principal in GOOD:
            assert await _close_code(server, who.tokens[principal]) is None, principal
        for principal, (_, scopes) in KEYS.items():  # a key needs threads:read to connect
            want = None if "threads:read" in scopes else 1008
            assert await _close_code(server, who.tokens[principal]) == want, principal

        owner = await open_socket(server, who.owner.token)
        ack = await owner.send_message("what is 6*7?")
        await owner.run_to_end(ack["run_id"])
        for principal in ("other", "admin", "admin_key"):
            token = who.tokens[principal]
            assert token is not None
            intruder = await open_socket(server, token)
            await intruder.send({"type": "cancel_run", "run_id": ack["run_id"], "ref": "a"})
            theirs = await intruder.first(lambda f: f.get("ref") == "a")
            await intruder.send({"type": "cancel_run", "run_id": "run_nothing", "ref": "b"})
            missing = await intruder.first(lambda f: f.get("ref") == "b")
            assert theirs["code"] == missing["code"] == "not_found"
            assert theirs["message"] == missing["message"]
            await intruder.send(
                {
                    "type": "approve_tool",
                    "run_id": ack["run_id"],
                    "tool_call_id": "call_1",
                    "decision": "approve",
                    "ref": "c",
                }
            )
            approval = await intruder.first(lambda f: f.get("ref") == "c")
            assert approval["code"] == "not_found" and approval["message"] == missing["message"]
            posted = await intruder.send_message("sneaky", thread_id=ack["thread_id"])
            assert posted["type"] == "error" and posted["code"] == "not_found"
            for ref, thread_id in (("d", ack["thread_id"]), ("e", "th_nothing")):
                await intruder.send(
                    {
                        "type": "edit_message",
                        "thread_id": thread_id,
                        "message_id": ack["message_id"],
                        "content": "sneaky edit",
                        "ref": ref,
                    }
                )
                await intruder.send(
                    {
                        "type": "regenerate",
                        "thread_id": thread_id,
                        "message_id": ack["message_id"],
                        "ref": ref * 2,
                    }
                )
            refusals = [
                await intruder.first(lambda f, ref=ref: f.get("ref") == ref)
                for ref in ("d", "dd", "e", "ee")
            ]
            assert {(f["type"], f["code"], f["message"]) for f in refusals} == {
                ("error", "not_found", "thread not found")
            }
            await intruder.send({"type": "resume", "after_seq": 0})
            await intruder.send({"type": "ping", "ref": "done"})
            await intruder.first(lambda f: f["type"] == "pong")
            assert all(
                f.get("run_id") != ack["run_id"] and f.get("thread_id") != ack["thread_id"]
                for f in intruder.frames
            )
            await intruder.close()
        # The owner's own key, without runs:write: every frame that acts on a run is refused.
        reader_key = who.tokens["reader_key"]
        assert reader_key is not None
        reader = await open_socket(server, reader_key)
        for frame in (
            {"type": "send_message", "content": "sneaky", "client_msg_id": "m"},
            {"type": "cancel_run", "run_id": ack["run_id"]},
            {
                "type": "approve_tool",
                "run_id": ack["run_id"],
                "tool_call_id": "call_1",
                "decision": "approve",
            },
            {
                "type": "edit_message",
                "thread_id": ack["thread_id"],
                "message_id": ack["message_id"],
                "content": "sneaky edit",
            },
            {"type": "regenerate", "thread_id": ack["thread_id"], "message_id": ack["message_id"]},
        ):
            await reader.send({**frame, "ref": frame["type"]})
            refusal = await reader.first(lambda f, ref=frame["type"]: f.get("ref") == ref)
            assert (refusal["type"], refusal["code"]) == ("error", "insufficient_scope"), refusal
        await reader.send({"type": "ping"})
        await reader.first(lambda f: f["type"] == "pong")
        await reader.close()
        messages = await http.get(f"/threads/{ack['thread_id']}/messages", headers=who.owner.auth)
        assert "sneaky" not in messages.text
        tree = await http.get(f"/threads/{ack['thread_id']}/tree", headers=who.owner.auth)
        assert len(tree.json()["items"]) == 2, "no branch was added"
        run = await http.get(f"/runs/{ack['run_id']}", headers=who.owner.auth)
        assert run.json()["status"] == "completed"
        await owner.close()


async def test_the_origin_allowlist(server_factory: ServerFactory) -> None:
    server = server_factory(websocket={"allowed_origins": ["https://chat.example.com"]})
    async with httpx.AsyncClient(base_url=server.url) as http:
        who = await build_principals(server, http)
        token = who.owner.token
        assert await _close_code(server, token, origin="https://evil.example.com") == 1008
        assert await _close_code(server, token, origin="https://chat.example.com") is None
        assert await _close_code(server, token, origin=server.url) is None  # its own page
        assert await _close_code(server, token) is None  # no Origin: not a browser


async def test_a_socket_sending_too_fast_is_slowed_then_cut_off(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(websocket={"frames_per_s": 1, "frame_burst": 3})
    async with httpx.AsyncClient(base_url=server.url) as http:
        who = await build_principals(server, http)
        socket = await open_socket(server, who.owner.token)
        for i in range(5):
            await socket.send({"type": "ping", "ref": str(i)})
        replies = [await socket.recv() for _ in range(5)]
        assert [r["type"] for r in replies].count("pong") == 3
        limited = [r for r in replies if r["type"] == "error"]
        assert len(limited) == 2
        assert all(r["code"] == "rate_limited" and r["retry_after"] >= 1 for r in limited)
        with contextlib.suppress(ConnectionClosed):  # the server may close mid-flood
            for _ in range(5):
                await socket.send({"type": "ping"})
        assert await socket.close_code() == 1008
        assert await _close_code(server, who.owner.token) is None  # others are unaffected


async def test_deep_or_huge_input_is_refused_and_stores_nothing(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(server={"max_body_bytes": 4096})
    async with httpx.AsyncClient(base_url=server.url) as http:
        who = await build_principals(server, http)
        socket = await open_socket(server, who.owner.token)
        nested: object = "x"
        for _ in range(20):
            nested = {"a": nested}
        await socket.send({"type": "send_message", "content": "hi", "extra": nested})
        error = await socket.recv()
        assert error["code"] == "invalid_frame" and "deeper" in error["message"]
        await socket.conn.send("[" * 30_000 + "]" * 30_000)
        error = await socket.recv()
        assert error["code"] == "invalid_frame" and "deeper" in error["message"]
        await socket.send({"type": "ping"})
        assert (await socket.recv())["type"] == "pong"
        await socket.close()

        huge = {"content": "x" * 10_000}
        thread = (await http.post("/threads", json={}, headers=who.owner.auth)).json()

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(4):
                yield json.dumps(huge).encode()

        for body in (json.dumps(huge).encode(), chunked()):
            refused = await http.post(
                f"/threads/{thread['id']}/runs",
                content=body,
                headers={**who.owner.auth, "Content-Type": "application/json"},
            )
            assert refused.status_code == 413, refused.text
            assert refused.json()["error"]["code"] == "payload_too_large"
        listed = await http.get(f"/threads/{thread['id']}/messages", headers=who.owner.auth)
        assert listed.json()["items"] == []
