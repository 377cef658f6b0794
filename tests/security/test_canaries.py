"""Secret canaries: the session-wide watch (``canaries`` in conftest) plants unique values in
the JWT secret, the database password and a model API key of every test server — and the
secret of every API key a test makes, once its one answer is sent (``make_key``) — and fails
the session if one shows up in a log record, a payload sent to a client or a database row.
These tests prove the watch sees what it claims to, and drive the chattiest paths."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from tests.conftest import ServerFactory, settings_for_test
from tests.support import CanaryWatch, bearer, live_server, make_key, make_user, open_socket


async def test_the_watch_catches_a_planted_value_everywhere_it_looks(tmp_path: Path) -> None:
    watch = CanaryWatch()
    planted = f"{watch.model_api_key}@example.com"
    settings = settings_for_test(tmp_path, None, CanaryWatch())
    config = UnifiedConfigurationManager(
        IsolatedEnvironment.isolated(), overrides=settings.model_dump(exclude_unset=True)
    )
    handler = watch.log_handler()
    logger = logging.getLogger("netra.test.canary")
    logger.addHandler(handler)
    try:
        with live_server(config, watch) as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                registered = await http.post(
                    "/auth/register", json={"email": planted, "password": "long enough pw"}
                )
                assert registered.status_code == 201
            logger.warning("signed up %s", planted)
    finally:
        logger.removeHandler(handler)
    places = {hit.split(":", 1)[0] for hit in watch.hits}
    assert "http.response.body on /auth/register" in places
    assert "database table users" in places
    assert "log record of netra.test.canary" in places
    assert watch.scanned["database rows"] > 0


async def test_a_planted_api_key_is_watched_like_the_configured_secrets(tmp_path: Path) -> None:
    watch = CanaryWatch()
    settings = settings_for_test(tmp_path, None, CanaryWatch())
    config = UnifiedConfigurationManager(
        IsolatedEnvironment.isolated(), overrides=settings.model_dump(exclude_unset=True)
    )
    with live_server(config, watch) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            user = await make_user(http)
            key = await make_key(server, user)
            assert watch.hits == []  # its one answer was sent before it was planted
            echoed = await http.post("/threads", json={"title": key["secret"]}, headers=user.auth)
            assert echoed.status_code == 201
    places = {hit.split(":", 1)[0] for hit in watch.hits}
    assert {"http.response.body on /threads", "database table threads"} <= places


async def test_secrets_stay_out_of_debug_logs(
    server_factory: ServerFactory, canaries: CanaryWatch
) -> None:
    before = canaries.scanned["log records"]
    server = server_factory(logging={"level": "DEBUG"}, database={"echo": True})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        wrong = await http.post("/auth/login", json={"email": user.email, "password": "nope"})
        assert wrong.status_code == 401
        signed_in = await http.post(
            "/auth/login", json={"email": user.email, "password": user.password}
        )
        refreshed = await http.post(
            "/auth/refresh", json={"refresh_token": signed_in.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200
        assert (
            await http.get("/me", headers={"Authorization": "Bearer forged"})
        ).status_code == 401
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("what is 12*7?")
        await socket.run_to_end(ack["run_id"])
        await socket.send({"type": "nonsense"})
        await socket.first(lambda f: f["type"] == "error")
        await socket.close()
        key = await make_key(server, user)  # its secret is a canary from here on
        assert (await http.get("/me", headers=bearer(key["secret"]))).status_code == 200
        assert (await http.get("/me", headers=bearer(key["secret"] + "x"))).status_code == 401
        by_key = await open_socket(server, key["secret"])
        ack = await by_key.send_message("what is 3*4?")
        await by_key.run_to_end(ack["run_id"])
        listed = await http.get("/me/api-keys", headers=user.auth)
        assert listed.status_code == 200
        assert (
            await http.delete(f"/me/api-keys/{key['id']}", headers=user.auth)
        ).status_code == 204
        assert await by_key.close_code() == 1008
        assert (await http.get("/me", headers=bearer(key["secret"]))).status_code == 401
        assert (await http.get("/ready")).status_code == 200
    assert canaries.scanned["log records"] > before
