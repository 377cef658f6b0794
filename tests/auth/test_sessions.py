"""Sessions against a real server: refresh rotation, reuse, logout, disable, admin, expiry."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerFactory
from tests.support import LiveServer, User, grant_admin, make_user, open_socket


async def _refused(server: LiveServer, token: str) -> int:
    """The close code of a socket opened with ``token`` (accepted, then closed unserved)."""
    async with connect(server.ws_url, subprotocols=["bearer", token]) as conn:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def _login(http: httpx.AsyncClient, user: User) -> dict[str, str]:
    response = await http.post("/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_refresh_rotates_and_reusing_a_spent_token_ends_the_session(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    first = await _login(http, user)
    socket = await open_socket(server, first["access_token"])
    rotated = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["refresh_token"] != first["refresh_token"]
    me = await http.get("/me", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert me.status_code == 200

    reused = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert await socket.close_code() == 1008
    for token in (first["access_token"], fresh["access_token"]):
        response = await http.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "session_revoked"
    again = await http.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert again.status_code == 401
    other = await http.get("/me", headers=user.auth)  # the first sign-in's session lives on
    assert other.status_code == 200


async def test_logout_ends_only_that_session_and_closes_its_sockets(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    second = await _login(http, user)
    doomed = await open_socket(server, second["access_token"])
    survivor = await open_socket(server, user.token)
    headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await http.post("/auth/logout", headers=headers)).status_code == 204
    assert await doomed.close_code() == 1008
    assert await _refused(server, second["access_token"]) == 1008  # known here until now
    assert (await http.get("/threads", headers=headers)).status_code == 401
    refresh = await http.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert refresh.status_code == 401
    await survivor.send({"type": "ping"})
    assert (await survivor.recv())["type"] == "pong"
    await survivor.close()


async def test_admins_change_tiers_and_disable_users_with_immediate_effect(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    admin, member = await make_user(http, "admin"), await make_user(http, "member")
    assert (await http.get("/admin/users", headers=member.auth)).status_code == 403
    grant_admin(server, admin.email)
    listed = await http.get("/admin/users", headers=admin.auth)
    assert listed.status_code == 200
    assert {u["email"] for u in listed.json()["items"]} >= {admin.email, member.email}

    changed = await http.patch(
        f"/admin/users/{member.id}", json={"tier": "pro"}, headers=admin.auth
    )
    assert changed.status_code == 200 and changed.json()["tier"] == "pro"
    assert (await http.get("/me", headers=member.auth)).json()["tier"] == "pro"
    bad = await http.patch(f"/admin/users/{member.id}", json={"tier": "gold"}, headers=admin.auth)
    assert bad.status_code == 422
    missing = await http.patch("/admin/users/usr_nobody", json={"tier": "pro"}, headers=admin.auth)
    assert missing.status_code == 404

    socket = await open_socket(server, member.token)
    disabled = await http.patch(
        f"/admin/users/{member.id}", json={"disabled": True}, headers=admin.auth
    )
    assert disabled.status_code == 200
    assert await socket.close_code() == 1008
    assert await _refused(server, member.token) == 1008
    assert (await http.get("/me", headers=member.auth)).status_code == 401
    login = await http.post(
        "/auth/login", json={"email": member.email, "password": member.password}
    )
    assert login.status_code == 401


async def test_a_tier_change_reaches_the_next_socket_of_a_session_known_here(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    """The session is known to the instance (its sockets do not read it), yet the tier an
    admin sets applies to the next socket: a message too long for ``free`` fits ``pro``."""
    admin, member = await make_user(http, "admin"), await make_user(http, "member")
    grant_admin(server, admin.email)
    long = "x" * 9_000  # free: at most 8,000 characters; pro: 32,000
    socket = await open_socket(server, member.token)
    refused = await socket.send_message(long)
    assert refused["type"] == "error" and refused["code"] == "message_too_large", refused
    changed = await http.patch(
        f"/admin/users/{member.id}", json={"tier": "pro"}, headers=admin.auth
    )
    assert changed.status_code == 200
    again = await open_socket(server, member.token)
    accepted = await again.send_message(long)
    assert accepted["type"] == "ack", accepted
    for open_ in (socket, again):
        await open_.close()


async def test_a_socket_closes_when_its_token_expires(server_factory: ServerFactory) -> None:
    server = server_factory(auth={"access_token_ttl_s": 5})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        assert await socket.close_code(timeout=20) == 1008
        response = await http.get("/me", headers=user.auth)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "token_expired"


async def test_failed_logins_are_throttled_per_address_without_locking_out_the_owner(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(auth={"login_failures_per_account": 3})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        attacker = {"X-Forwarded-For": "203.0.113.7"}
        owner = {"X-Forwarded-For": "198.51.100.20"}
        wrong = {"email": user.email, "password": "not-the-password"}
        for _ in range(3):
            assert (await http.post("/auth/login", json=wrong, headers=attacker)).status_code == 401
        blocked = await http.post("/auth/login", json=wrong, headers=attacker)
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 0
        assert blocked.json()["error"]["code"] == "quota_exceeded"
        right = {"email": user.email, "password": user.password}
        assert (await http.post("/auth/login", json=right, headers=attacker)).status_code == 429
        assert (await http.post("/auth/login", json=right, headers=owner)).status_code == 200
        unknown = {"email": "nobody@example.com", "password": "whatever1"}
        for _ in range(3):
            await http.post("/auth/login", json=unknown, headers=owner)
        assert (await http.post("/auth/login", json=unknown, headers=owner)).status_code == 429
