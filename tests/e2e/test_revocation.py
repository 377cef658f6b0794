"""Sessions ended on one instance end on every instance: two instances on one PostgreSQL
database and one Redis. Each trusts a session it read lately without reading it again
(``auth.session_cache_s``); the ``revoked`` and ``account`` notices over Redis are what make
the other instance forget it, so the windows here are long enough that nothing else could."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Cluster
from tests.support import (
    LiveServer,
    eventually,
    grant_admin,
    make_key,
    make_user,
    open_socket,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
LONG_TRUST = {"session_cache_s": 300.0}


async def _close_code(server: LiveServer, token: str) -> int | None:
    """The close code of a socket opened with ``token``; None when it was served."""
    async with connect(server.ws_url, subprotocols=["bearer", token]) as conn:  # type: ignore[list-item]
        try:
            first = await conn.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else 1006
    assert '"connected"' in str(first)
    return None


async def test_a_logout_on_one_instance_closes_the_sessions_sockets_on_the_other(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url, auth=LONG_TRUST)
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        user = await make_user(http_a)  # signed in on A: the session is known there
        other = await http_a.post(
            "/auth/login", json={"email": user.email, "password": user.password}
        )
        survivor_token = other.json()["access_token"]
        on_a = await open_socket(a, user.token)
        survivor = await open_socket(a, survivor_token)
        assert (await http_b.post("/auth/logout", headers=user.auth)).status_code == 204
        assert await on_a.close_code() == 1008
        assert await _close_code(a, user.token) == 1008  # A forgot the session too
        await survivor.send({"type": "ping"})  # the user's other session lives on
        assert (await survivor.until(lambda f: f["type"] == "pong"))["type"] == "pong"
        await survivor.close()


async def test_disabling_a_user_on_one_instance_closes_every_socket_on_the_other(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url, auth=LONG_TRUST)
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        admin, member = await make_user(http_b, "admin"), await make_user(http_a, "member")
        grant_admin(b, admin.email)
        sockets = [await open_socket(a, member.token) for _ in range(2)]
        disabled = await http_b.patch(
            f"/admin/users/{member.id}", json={"disabled": True}, headers=admin.auth
        )
        assert disabled.status_code == 200
        for socket in sockets:
            assert await socket.close_code() == 1008
        assert await _close_code(a, member.token) == 1008


async def test_a_tier_change_on_one_instance_reaches_the_next_socket_on_the_other(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url, auth=LONG_TRUST)
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        admin, member = await make_user(http_b, "admin"), await make_user(http_a, "member")
        grant_admin(b, admin.email)
        long = "x" * 9_000  # free: at most 8,000 characters; pro: 32,000
        socket = await open_socket(a, member.token)
        refused = await socket.send_message(long)
        assert refused["type"] == "error" and refused["code"] == "message_too_large"
        await socket.close()
        changed = await http_b.patch(
            f"/admin/users/{member.id}", json={"tier": "pro"}, headers=admin.auth
        )
        assert changed.status_code == 200

        async def fits() -> bool:
            # The notice travels over Redis: until it is heard, A's next socket is still free.
            again = await open_socket(a, member.token)
            try:
                return (await again.send_message(long))["type"] == "ack"
            finally:
                await again.close()

        await eventually(fits, "A heard of the new tier")


async def test_revoking_an_api_key_on_one_instance_closes_its_sockets_on_the_other(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url, auth=LONG_TRUST)
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        user = await make_user(http_a)
        doomed, kept = await make_key(a, user), await make_key(a, user)
        on_a = await open_socket(a, doomed["secret"])  # A knows the key's session now
        survivor = await open_socket(a, kept["secret"])
        revoked = await http_b.delete(f"/me/api-keys/{doomed['id']}", headers=user.auth)
        assert revoked.status_code == 204
        assert await on_a.close_code() == 1008
        assert await _close_code(a, doomed["secret"]) == 1008
        await survivor.send({"type": "ping"})  # the user's other key lives on
        assert (await survivor.until(lambda f: f["type"] == "pong"))["type"] == "pong"
        await survivor.close()
