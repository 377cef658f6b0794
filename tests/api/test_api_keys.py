"""API keys: made and shown once, listed without their secret, narrowed by scopes, refused
once revoked or expired — their sockets closed at once — and managed by administrators too.

Every secret a test makes is planted in the session's canary watch (``make_key``): none may
show up afterwards in a log record, an answer, a frame or a database row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from netra.auth.api_keys import MAX_KEYS_PER_USER
from netra.db.sql import Statement, execute
from tests.conftest import ServerFactory
from tests.support import (
    LiveServer,
    bearer,
    expire_key,
    grant_admin,
    make_key,
    make_user,
    open_socket,
)


async def _refusal(server: LiveServer, secret: str) -> tuple[int, str]:
    """The close code and reason a socket opened with ``secret`` gets before ``connected``."""
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(server.ws_url, subprotocols=["bearer", secret]) as conn:  # type: ignore[list-item]
            await conn.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def _error(response: httpx.Response) -> dict[str, Any]:
    assert set(response.json()) == {"error"}, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_a_key_is_shown_once_listed_without_its_secret_and_works_until_revoked(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        created = await make_key(server, user, name="reports")
        secret = created["secret"]
        assert secret.startswith("nk_") and len(secret) >= 40
        assert created["prefix"] == secret[:11]
        assert created["name"] == "reports" and created["last_used_at"] is None
        assert created["scopes"] == ["runs:write", "threads:read", "threads:write"]
        key = bearer(secret)

        me = await http.get("/me", headers=key)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user.id
        thread = await http.post("/threads", json={"title": "by key"}, headers=key)
        assert thread.status_code == 201, thread.text
        listed = await http.get("/threads", headers=user.auth)
        assert [t["id"] for t in listed.json()["items"]] == [thread.json()["id"]]

        keys = await http.get("/me/api-keys", headers=user.auth)
        assert keys.status_code == 200, keys.text
        [shown] = keys.json()["items"]
        assert set(shown) == set(created) - {"secret"}
        assert shown["id"] == created["id"] and shown["last_used_at"] is not None
        for view in (keys, me, await http.get(f"/threads/{thread.json()['id']}", headers=key)):
            assert secret not in view.text and secret[11:] not in view.text

        revoked = await http.delete(f"/me/api-keys/{created['id']}", headers=user.auth)
        assert revoked.status_code == 204, revoked.text
        refused = await http.get("/me", headers=key)
        assert refused.status_code == 401
        assert _error(refused)["code"] == "api_key_revoked"
        assert (await http.get("/me/api-keys", headers=user.auth)).json()["items"] == []
        again = await http.delete(f"/me/api-keys/{created['id']}", headers=user.auth)
        assert again.status_code == 404
        forged = await http.get("/me", headers=bearer(secret[:-4] + "abcd"))
        assert forged.status_code == 401
        assert _error(forged)["code"] == "unauthenticated"


async def test_revoking_a_key_closes_its_sockets_at_once_and_no_other(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        doomed, kept = await make_key(server, user), await make_key(server, user)
        by_key = await open_socket(server, doomed["secret"])
        assert by_key.connected["user_id"] == user.id
        ack = await by_key.send_message("what is 6*7?")
        assert ack["type"] == "ack", ack
        await by_key.run_to_end(ack["run_id"])
        by_other_key = await open_socket(server, kept["secret"])
        by_token = await open_socket(server, user.token)

        revoked = await http.delete(f"/me/api-keys/{doomed['id']}", headers=user.auth)
        assert revoked.status_code == 204
        assert await by_key.close_code() == 1008
        assert await _refusal(server, doomed["secret"]) == (1008, "API key revoked")
        for survivor in (by_other_key, by_token):
            await survivor.send({"type": "ping"})
            await survivor.first(lambda f: f["type"] == "pong")
            await survivor.close()


async def test_an_expired_key_is_refused_and_its_socket_closes_when_it_expires(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        soon = datetime.now(UTC) + timedelta(seconds=2)
        brief = await make_key(server, user, expires_at=soon)
        assert brief["expires_at"] == soon.isoformat()
        socket = await open_socket(server, brief["secret"])
        assert await socket.close_code() == 1008  # at its expiry, not before the test waits
        assert datetime.now(UTC) >= soon - timedelta(milliseconds=50)
        refused = await http.get("/threads", headers=bearer(brief["secret"]))
        assert refused.status_code == 401
        assert _error(refused)["code"] == "api_key_expired"
        assert await _refusal(server, brief["secret"]) == (1008, "API key expired")

        lapsed = await make_key(server, user)
        await expire_key(server, lapsed["id"])
        refused = await http.get("/me", headers=bearer(lapsed["secret"]))
        assert _error(refused)["code"] == "api_key_expired"
        listed = await http.get("/me/api-keys", headers=user.auth)
        assert {k["id"] for k in listed.json()["items"]} == {brief["id"], lapsed["id"]}


async def test_scopes_limit_what_a_key_may_do_over_http_and_on_the_socket(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, admin = await make_user(http), await make_user(http, "admin")
        grant_admin(server, admin.email)
        thread = (await http.post("/threads", json={}, headers=user.auth)).json()
        reader = bearer((await make_key(server, user, ["threads:read"]))["secret"])
        runner_key = await make_key(server, user, ["runs:write"])
        runner = bearer(runner_key["secret"])

        assert (await http.get("/threads", headers=reader)).status_code == 200
        for method, path, body in (
            ("POST", "/threads", {}),
            ("PATCH", f"/threads/{thread['id']}", {"title": "no"}),
            ("POST", f"/threads/{thread['id']}/runs", {"content": "hi"}),
        ):
            refused = await http.request(method, path, json=body, headers=reader)
            assert refused.status_code == 403, (path, refused.text)
            assert _error(refused)["code"] == "insufficient_scope"
        sent = await http.post(
            f"/threads/{thread['id']}/runs", json={"content": "what is 2+2?"}, headers=runner
        )
        assert sent.status_code == 202, sent.text
        refused = await http.get(f"/runs/{sent.json()['run_id']}", headers=runner)
        assert refused.status_code == 403
        assert "threads:read" in _error(refused)["message"]

        # Keys never manage keys, end sessions or administer, whatever their scopes.
        admins_key = bearer((await make_key(server, admin))["secret"])
        for method, path, headers in (
            ("GET", "/me/api-keys", reader),
            ("POST", "/auth/logout", reader),
            ("GET", "/admin/users", admins_key),
            ("GET", f"/admin/users/{user.id}/api-keys", admins_key),
        ):
            refused = await http.request(method, path, headers=headers)
            assert refused.status_code == 403, (path, refused.text)
            assert _error(refused)["code"] == "insufficient_scope"
        assert (await http.get("/me", headers=runner)).status_code == 200

        # The socket: threads:read to connect, runs:write to act on runs.
        assert await _refusal(server, runner_key["secret"]) == (
            1008,
            "this API key lacks the scope threads:read",
        )
        socket = await open_socket(server, reader["Authorization"].removeprefix("Bearer "))
        refusal = await socket.send_message("from a reader", thread_id=thread["id"])
        assert refusal["type"] == "error" and refusal["code"] == "insufficient_scope"
        await socket.send({"type": "cancel_run", "run_id": sent.json()["run_id"], "ref": "c"})
        cancel = await socket.first(lambda f: f.get("ref") == "c")
        assert cancel["code"] == "insufficient_scope"
        await socket.send({"type": "ping"})
        await socket.first(lambda f: f["type"] == "pong")  # the socket lives on
        await socket.close()
        messages = await http.get(f"/threads/{thread['id']}/messages", headers=user.auth)
        assert [m["content"] for m in messages.json()["items"] if m["role"] == "user"] == [
            "what is 2+2?"
        ]


async def test_a_key_acts_as_its_user_with_the_users_limits(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user, other = await make_user(http), await make_user(http, "other")
        theirs = (await http.post("/threads", json={}, headers=other.auth)).json()
        key = await make_key(server, user)
        socket = await open_socket(server, key["secret"])
        too_long = await socket.send_message("x" * 9_000)  # the free tier: 8,000 characters
        assert too_long["type"] == "error" and too_long["code"] == "message_too_large"
        intrusion = await socket.send_message("hi", thread_id=theirs["id"])
        assert intrusion["type"] == "error" and intrusion["code"] == "not_found"
        ack = await socket.send_message("what is 6*7?")
        events = await socket.run_to_end(ack["run_id"])
        assert events[-1]["data"]["outcome"] == "completed"
        run = await http.get(f"/runs/{ack['run_id']}", headers=user.auth)
        assert run.status_code == 200
        hidden = await http.get(f"/threads/{theirs['id']}", headers=bearer(key["secret"]))
        assert hidden.status_code == 404
        await socket.close()


async def test_another_users_key_is_a_404_like_a_missing_one(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        owner, other = await make_user(http, "owner"), await make_user(http, "other")
        key = await make_key(server, owner)
        theirs = await http.delete(f"/me/api-keys/{key['id']}", headers=other.auth)
        missing = await http.delete(f"/me/api-keys/key_{uuid.uuid4().hex}", headers=other.auth)
        assert theirs.status_code == missing.status_code == 404
        assert {**_error(theirs), "request_id": ""} == {**_error(missing), "request_id": ""}
        assert (await http.get("/me/api-keys", headers=other.auth)).json()["items"] == []
        assert (await http.get("/me", headers=bearer(key["secret"]))).status_code == 200


async def test_admins_list_and_revoke_any_users_keys(server_factory: ServerFactory) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        admin, member = await make_user(http, "admin"), await make_user(http, "member")
        grant_admin(server, admin.email)
        key = await make_key(server, member, ["threads:read"], name="ci")
        socket = await open_socket(server, key["secret"])

        listed = await http.get(f"/admin/users/{member.id}/api-keys", headers=admin.auth)
        assert listed.status_code == 200, listed.text
        [shown] = listed.json()["items"]
        assert shown["name"] == "ci" and "secret" not in shown
        assert key["secret"] not in listed.text
        forbidden = await http.get(f"/admin/users/{member.id}/api-keys", headers=member.auth)
        assert forbidden.status_code == 403
        unknown = await http.get("/admin/users/usr_nobody/api-keys", headers=admin.auth)
        assert unknown.status_code == 404
        wrong_user = await http.delete(
            f"/admin/users/{admin.id}/api-keys/{key['id']}", headers=admin.auth
        )
        assert wrong_user.status_code == 404

        revoked = await http.delete(
            f"/admin/users/{member.id}/api-keys/{key['id']}", headers=admin.auth
        )
        assert revoked.status_code == 204, revoked.text
        assert await socket.close_code() == 1008
        assert (await http.get("/me", headers=bearer(key["secret"]))).status_code == 401
        assert (await http.get("/me/api-keys", headers=member.auth)).json()["items"] == []


async def test_a_disabled_users_keys_stop_working_for_good(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        admin, member = await make_user(http, "admin"), await make_user(http, "member")
        grant_admin(server, admin.email)
        key = await make_key(server, member)
        socket = await open_socket(server, key["secret"])
        for disabled in (True, False):
            changed = await http.patch(
                f"/admin/users/{member.id}", json={"disabled": disabled}, headers=admin.auth
            )
            assert changed.status_code == 200, changed.text
        assert await socket.close_code() == 1008
        refused = await http.get("/me", headers=bearer(key["secret"]))
        assert refused.status_code == 401  # enabled again, but its keys ended with it
        assert (await http.get(f"/admin/users/{member.id}/api-keys", headers=admin.auth)).json()[
            "items"
        ] == []


async def test_bad_key_requests_get_clear_errors(server_factory: ServerFactory) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        for body in (
            {"name": "", "scopes": ["threads:read"]},
            {"name": "x" * 101, "scopes": ["threads:read"]},
            {"name": "k", "scopes": []},
            {"name": "k", "scopes": ["admin"]},
            {"name": "k", "scopes": "threads:read"},
            {"name": "k", "scopes": ["threads:read"], "expires_at": "tomorrow"},
            {"name": "k", "scopes": ["threads:read"], "expires_at": "2099-01-01T00:00:00"},
            {"name": "k", "scopes": ["threads:read"], "expires_at": "2001-01-01T00:00:00Z"},
            {"name": "k", "scopes": ["threads:read"], "expires_at": future, "owner": "x"},
            {"name": "a\x00b", "scopes": ["threads:read"]},
        ):
            refused = await http.post("/me/api-keys", json=body, headers=user.auth)
            assert refused.status_code == 422, (body, refused.text)
            assert _error(refused)["code"] == "invalid_request"
            assert _error(refused)["details"], body
        assert (await http.get("/me/api-keys", headers=user.auth)).json()["items"] == []

        for number in range(MAX_KEYS_PER_USER):
            created = await http.post(
                "/me/api-keys",
                json={"name": f"k{number}", "scopes": ["threads:read"]},
                headers=user.auth,
            )
            assert created.status_code == 201, created.text
            assert server.watch is not None
            server.watch.plant(created.json()["secret"])
        one_more = await http.post(
            "/me/api-keys",
            json={"name": "one more", "scopes": ["threads:read"]},
            headers=user.auth,
        )
        assert one_more.status_code == 409
        assert _error(one_more)["code"] == "too_many_api_keys"
        listed = await http.get("/me/api-keys", headers=user.auth)
        assert len(listed.json()["items"]) == MAX_KEYS_PER_USER


async def test_a_keys_socket_closes_even_when_the_revocations_notice_is_lost(
    server_factory: ServerFactory,
) -> None:
    """A key's socket has no token to expire: its session is read again every
    ``auth.access_token_ttl_s``, so a revocation it never heard of still closes it."""
    server = server_factory(auth={"access_token_ttl_s": 5})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        key = await make_key(server, user)
        socket = await open_socket(server, key["secret"])
        unheard = Statement(
            "test: a key's session ended by an instance whose notice never arrived",
            "UPDATE sessions SET revoked_at = :revoked_at WHERE id ="
            " (SELECT session_id FROM api_keys WHERE id = :id)",
        )
        now = datetime.now(UTC)
        await server.call(
            lambda: server.netra.db.transact(execute(unheard(id=key["id"], revoked_at=now)))
        )
        await socket.send({"type": "ping"})
        await socket.first(lambda f: f["type"] == "pong")  # nothing told this instance yet
        assert await socket.close_code(timeout=20) == 1008
