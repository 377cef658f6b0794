"""Edit, regenerate, switch branches, fork: a thread is a tree of messages, and each run sees
only its own branch — on a real server, both backends."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from netra.models.base import ModelRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.support import User, hold_runs, make_user, open_socket


def echo(request: ModelRequest) -> ScriptedTurn:
    """Answers "re: <question>" (how many answers the question had is the test's business)."""
    return ScriptedTurn.text(f"re: {request.messages[-1].content}")


def said(request: ModelRequest) -> list[str]:
    return [m.content for m in request.messages if m.role in ("user", "assistant")]


async def branch(http: httpx.AsyncClient, user: User, thread_id: str) -> list[dict[str, Any]]:
    page = await http.get(f"/threads/{thread_id}/messages", headers=user.auth)
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def test_edit_regenerate_switch_and_fork(server_factory: ServerFactory) -> None:
    server = server_factory(models={"default": "scripted"})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = echo
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user, other = await make_user(http, "brancher"), await make_user(http, "other")
        socket = await open_socket(server, user.token)
        thread_id = None
        for n in range(1, 7):
            ack = await socket.send_message(
                f"q{n}", **({"thread_id": thread_id} if thread_id else {})
            )
            thread_id = ack["thread_id"]
            await socket.run_to_end(ack["run_id"])
        assert thread_id is not None
        original = await branch(http, user, thread_id)
        assert [m["content"] for m in original] == [
            text for n in range(1, 7) for text in (f"q{n}", f"re: q{n}")
        ]
        assert [m["turn"] for m in original] == [n for n in range(1, 7) for _ in (0, 1)]
        assert all(m["siblings"] == [m["id"]] for m in original)
        q3 = original[4]

        # Editing turn 3 makes a branch; the run sees only the path to the new question.
        edited = await http.post(
            f"/threads/{thread_id}/messages/{q3['id']}/edit",
            json={"content": "q3, put better"},
            headers=user.auth,
        )
        assert edited.status_code == 202, edited.text
        await socket.first(  # every tab hears of the new branch
            lambda f: (
                f["type"] == "thread_updated"
                and f["data"]["thread"]["active_leaf"] == edited.json()["message_id"]
            )
        )
        await socket.run_to_end(edited.json()["run_id"])
        assert said(model.requests[-1]) == ["q1", "re: q1", "q2", "re: q2", "q3, put better"]
        new_branch = await branch(http, user, thread_id)
        assert [m["content"] for m in new_branch] == [
            "q1",
            "re: q1",
            "q2",
            "re: q2",
            "q3, put better",
            "re: q3, put better",
        ]
        assert new_branch[4]["siblings"] == [q3["id"], edited.json()["message_id"]]
        assert new_branch[4]["parent_id"] == original[3]["id"] and new_branch[4]["turn"] == 3

        # The old branch is still there, whole: switching to q3 goes to its newest end.
        switched = await http.put(
            f"/threads/{thread_id}/active_leaf", json={"message_id": q3["id"]}, headers=user.auth
        )
        assert switched.status_code == 200, switched.text
        assert switched.json()["active_leaf"] == original[-1]["id"]
        back = await branch(http, user, thread_id)
        assert [m["id"] for m in back] == [m["id"] for m in original]
        assert back[4]["siblings"] == new_branch[4]["siblings"]

        # Regenerating the last answer twice: three answers side by side, each run saw the
        # old branch up to q6 and nothing else.
        for _ in range(2):
            again = await http.post(
                f"/threads/{thread_id}/messages/{original[-1]['id']}/regenerate",
                headers=user.auth,
            )
            assert again.status_code == 202, again.text
            assert again.json()["message_id"] == original[-2]["id"], "the question answered"
            await socket.run_to_end(again.json()["run_id"])
            assert said(model.requests[-1]) == [m["content"] for m in original[:-1]]
        latest = await branch(http, user, thread_id)
        assert len(latest) == 12
        answers = latest[-1]["siblings"]
        assert len(answers) == 3 and answers[0] == original[-1]["id"]
        assert latest[-1]["id"] == answers[-1]
        assert latest[-2]["run_id"] == latest[-1]["run_id"] == again.json()["run_id"]

        # Fork at the answer of turn 4 of the old branch: exactly that path, copied.
        forked = await http.post(
            f"/threads/{thread_id}/fork",
            json={"at_message_id": original[7]["id"]},
            headers=user.auth,
        )
        assert forked.status_code == 201, forked.text
        fork = forked.json()
        assert fork["id"] != thread_id and fork["title"].endswith("(fork)")
        copy = await branch(http, user, fork["id"])
        assert [(m["role"], m["content"], m["turn"]) for m in copy] == [
            (m["role"], m["content"], m["turn"]) for m in original[:8]
        ]
        assert not {m["id"] for m in copy} & {m["id"] for m in original}
        assert [m["parent_id"] for m in copy[1:]] == [m["id"] for m in copy[:-1]]
        fork_tree = await http.get(f"/threads/{fork['id']}/tree", headers=user.auth)
        assert len(fork_tree.json()["items"]) == 8
        # The fork goes on on its own: its next run sees the copied path.
        ack = await socket.send_message("q5 in the fork", thread_id=fork["id"])
        await socket.run_to_end(ack["run_id"])
        assert said(model.requests[-1]) == [m["content"] for m in original[:8]] + ["q5 in the fork"]

        tree = await http.get(f"/threads/{thread_id}/tree", headers=user.auth)
        nodes = tree.json()["items"]
        assert len(nodes) == 12 + 2 + 2, "the first branch, the edit and its answer, 2 answers"
        assert tree.json()["active_leaf"] == answers[-1]
        paged = await http.get(
            f"/threads/{thread_id}/tree", params={"limit": 10}, headers=user.auth
        )
        rest = await http.get(
            f"/threads/{thread_id}/tree",
            params={"limit": 10, "cursor": paged.json()["next_cursor"]},
            headers=user.auth,
        )
        assert [n["id"] for n in paged.json()["items"] + rest.json()["items"]] == [
            n["id"] for n in nodes
        ]

        # Nobody else can see or change any of it: a 404, as for what does not exist.
        for method, path, body in (
            ("POST", f"/threads/{thread_id}/messages/{q3['id']}/edit", {"content": "x"}),
            ("POST", f"/threads/{thread_id}/messages/{q3['id']}/regenerate", {}),
            ("PUT", f"/threads/{thread_id}/active_leaf", {"message_id": q3["id"]}),
            ("POST", f"/threads/{thread_id}/fork", {"at_message_id": q3["id"]}),
            ("GET", f"/threads/{thread_id}/tree", None),
        ):
            theirs = await http.request(method, path, json=body, headers=other.auth)
            assert theirs.status_code == 404, (method, path, theirs.text)
        # A message of another thread of one's own is not a message of this one.
        elsewhere = await http.post(
            f"/threads/{fork['id']}/messages/{q3['id']}/edit",
            json={"content": "x"},
            headers=user.auth,
        )
        assert elsewhere.status_code == 404
        assert elsewhere.json()["error"]["message"] == "message not found"
        answer_edit = await http.post(
            f"/threads/{thread_id}/messages/{original[-1]['id']}/edit",
            json={"content": "x"},
            headers=user.auth,
        )
        assert answer_edit.status_code == 422
        assert answer_edit.json()["error"]["code"] == "not_editable"
        await socket.close()


async def test_the_socket_edits_and_regenerates_too(server_factory: ServerFactory) -> None:
    server = server_factory(models={"default": "scripted"})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = echo
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http, "socketer")
        socket = await open_socket(server, user.token)
        first = await socket.send_message("hello")
        await socket.run_to_end(first["run_id"])
        await socket.send(
            {
                "type": "edit_message",
                "thread_id": first["thread_id"],
                "message_id": first["message_id"],
                "content": "hello there",
                "client_msg_id": "edit-1",
            }
        )
        edited = await socket.first(lambda f: f["type"] == "ack" and f["client_msg_id"] == "edit-1")
        await socket.run_to_end(edited["run_id"])
        await socket.send(
            {
                "type": "regenerate",
                "thread_id": first["thread_id"],
                "message_id": edited["message_id"],
                "ref": "again",
            }
        )
        again = await socket.first(lambda f: f["type"] == "ack" and f.get("ref") == "again")
        assert again["message_id"] == edited["message_id"]
        await socket.run_to_end(again["run_id"])
        items = await branch(http, user, first["thread_id"])
        assert [m["content"] for m in items] == ["hello there", "re: hello there"]
        assert items[0]["siblings"] == [first["message_id"], edited["message_id"]]
        assert len(items[1]["siblings"]) == 2
        await socket.send(
            {
                "type": "regenerate",
                "thread_id": first["thread_id"],
                "message_id": "msg_no",
                "ref": "x",
            }
        )
        refused = await socket.first(lambda f: f.get("ref") == "x")
        assert (refused["type"], refused["code"]) == ("error", "not_found")
        await socket.close()


async def test_a_question_sent_while_the_answer_is_awaited_follows_the_answer(
    server_factory: ServerFactory,
) -> None:
    """Double-texting (enqueue): the second question is stored before the first answer; the
    branch still reads question, answer, question, answer, and the second run saw the first
    answer."""
    server = server_factory(models={"default": "scripted"})
    gate = threading.Event()
    hold_runs(server, gate, holds=lambda request: request.messages[-1].content == "first")
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http, "texter")
        socket = await open_socket(server, user.token)
        one = await socket.send_message("first")
        await socket.first(lambda f: f["type"] == "tool_executing" and f["run_id"] == one["run_id"])
        two = await socket.send_message("second", thread_id=one["thread_id"])
        gate.set()
        await socket.run_to_end(one["run_id"])
        await socket.run_to_end(two["run_id"])
        items = await branch(http, user, one["thread_id"])
        assert [m["content"] for m in items] == ["first", "done waiting", "second", "done at once"]
        assert [m["parent_id"] for m in items[1:]] == [m["id"] for m in items[:-1]]
        assert said(model.requests[-1]) == [
            "first",
            "[tools used: hold {} → released]\ndone waiting",  # the answer, its call in brief
            "second",
        ]
        await socket.close()
