"""Tokens signed with the server's own secret whose claims are of the wrong type.

RFC 7519 makes ``exp``, ``iat`` and ``nbf`` NumericDates: JSON numbers. A string that reads
like one (``"9999999999"``) or a boolean is a malformed token, refused like any other: 401
with the standard error body, over HTTP and on the WebSocket handshake alike.
"""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.security.principals import resigned, signing_secret
from tests.support import LiveServer, make_user

FOREVER = 9_999_999_999
BAD_DATES = [
    {"exp": str(FOREVER)},
    {"exp": True},
    {"exp": [FOREVER]},
    {"iat": str(int(time.time()))},
    {"iat": True},
    {"nbf": "0"},
    {"nbf": False},
    # Numbers, but in the future: checked by the same code since it took over from PyJWT.
    {"iat": FOREVER},
    {"nbf": FOREVER},
]


async def test_a_numeric_date_that_is_not_a_json_number_is_refused(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    secret = signing_secret(server)
    # The forgery itself works: a token re-signed with a far but numeric exp is accepted
    # (a NumericDate may have a fraction).
    control = resigned(user.token, secret, exp=FOREVER + 0.5)
    accepted = await http.get("/me", headers={"Authorization": f"Bearer {control}"})
    assert accepted.status_code == 200, accepted.text

    wrong = []
    for changes in BAD_DATES:
        token = resigned(user.token, secret, **changes)
        response = await http.get("/me", headers={"Authorization": f"Bearer {token}"})
        body = response.json()
        # Malformed, not expired: the same answer as for any invalid token.
        if response.status_code != 401 or body["error"]["code"] != "unauthenticated":
            wrong.append(f"{changes}: {response.status_code} {response.text[:200]}")
            continue
        assert set(body) == {"error"}, response.text
        assert body["error"]["message"] == "invalid token", response.text
        assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert not wrong, "\n".join(wrong)

    # The socket handshake verifies tokens the same way.
    for changes in ({"exp": str(FOREVER)}, {"nbf": "0"}):
        token = resigned(user.token, secret, **changes)
        async with connect(server.ws_url, subprotocols=["bearer", token]) as conn:  # type: ignore[list-item]
            with pytest.raises(ConnectionClosed) as closed:
                await conn.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, changes
