"""Who knocks: every kind of caller the authorization matrices try, with real credentials.

Forged tokens are made the way an attacker would, from a real token of the owner: claims
changed and re-signed with the server's secret (expired, wrong audience), signed with no
algorithm at all, or with the payload swapped under the original signature. API keys are
made as their owners make them (``POST /me/api-keys``), then revoked, expired or left with
a disabled user; a forged one is well-formed random text.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

import httpx
import jwt

from tests.support import (
    ALL_SCOPES,
    LiveServer,
    User,
    expire_key,
    grant_admin,
    make_key,
    make_user,
)

GOOD = ("owner", "other", "admin")
"""Principals signed in: a valid access token."""
KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "owner_key": ("owner", ALL_SCOPES),
    "reader_key": ("owner", ("threads:read",)),
    "runner_key": ("owner", ("runs:write",)),
    "admin_key": ("admin", ALL_SCOPES),
}
"""Principals holding a valid API key: whose it is, and its scopes."""
BAD = (
    "anonymous",
    "expired",
    "wrong_audience",
    "alg_none",
    "tampered",
    "revoked",
    "refresh_token",
    "disabled",
    "revoked_key",
    "expired_key",
    "disabled_key",
    "forged_key",
)
"""Principals whose credential must be refused (401) wherever one is needed."""
ALL = GOOD + tuple(KEYS) + BAD


@dataclass
class Principals:
    owner: User
    other: User
    admin: User
    tokens: dict[str, str | None]
    """Bearer token (or API key) per principal (None: no credential at all)."""

    def headers(self, principal: str) -> dict[str, str]:
        token = self.tokens[principal]
        return {} if token is None else {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resigned(token: str, secret: str, **changes: object) -> str:
    """``token`` with ``changes`` over its claims, signed again with ``secret``."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode({**claims, **changes}, secret, algorithm=header["alg"])


def _unsigned(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    header = {"alg": "none", "typ": "JWT"}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _tampered(token: str, user_id: str) -> str:
    """The owner's signature over a payload that claims to be someone else."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = user_id
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


def signing_secret(server: LiveServer) -> str:
    """The secret ``server`` signs its tokens with (what an attacker who stole it holds)."""
    secret = server.netra.settings.auth.jwt_secret
    assert secret is not None
    return secret.get_secret_value()


async def _login(http: httpx.AsyncClient, user: User) -> dict[str, str]:
    response = await http.post("/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def fresh_token(http: httpx.AsyncClient, user: User) -> str:
    """A token of a new sign-in session of ``user`` (to spend on logout)."""
    return (await _login(http, user))["access_token"]


async def build_principals(server: LiveServer, http: httpx.AsyncClient) -> Principals:
    owner, other, admin = [await make_user(http, label) for label in ("owner", "other", "admin")]
    grant_admin(server, admin.email)
    secret = signing_secret(server)
    now = int(time.time())

    ended = await _login(http, owner)
    logout = await http.post(
        "/auth/logout", headers={"Authorization": f"Bearer {ended['access_token']}"}
    )
    assert logout.status_code == 204, logout.text

    live = await _login(http, owner)
    users = {"owner": owner, "admin": admin}
    keys = {
        name: (await make_key(server, users[whose], scopes))["secret"]
        for name, (whose, scopes) in KEYS.items()
    }
    revoked = await make_key(server, owner)
    gone_key = await http.delete(f"/me/api-keys/{revoked['id']}", headers=owner.auth)
    assert gone_key.status_code == 204, gone_key.text
    expired = await make_key(server, owner)
    await expire_key(server, expired["id"])
    gone = await make_user(http, "disabled")
    disabled_key = await make_key(server, gone)
    disabled = await http.patch(
        f"/admin/users/{gone.id}", json={"disabled": True}, headers=admin.auth
    )
    assert disabled.status_code == 200, disabled.text

    tokens: dict[str, str | None] = {
        "owner": owner.token,
        "other": other.token,
        "admin": admin.token,
        "anonymous": None,
        "expired": resigned(owner.token, secret, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "wrong_audience": resigned(owner.token, secret, aud="someone-else"),
        "alg_none": _unsigned(owner.token),
        "tampered": _tampered(owner.token, other.id),
        "revoked": ended["access_token"],
        "refresh_token": live["refresh_token"],
        "disabled": gone.token,
        **keys,
        "revoked_key": revoked["secret"],
        "expired_key": expired["secret"],
        "disabled_key": disabled_key["secret"],
        "forged_key": "nk_" + secrets.token_urlsafe(32),
    }
    assert set(tokens) == set(ALL)
    return Principals(owner, other, admin, tokens)
