"""Access tokens: signed JWTs with pinned algorithm, issuer, audience and type."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from netra.auth.permissions import permissions_for
from netra.context import UserExecutionContext
from netra.errors import Unauthenticated
from netra.ids import new_id
from netra.settings import AuthSettings

ACCESS = "access"
_LEEWAY_S = 5


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    jti: str


class TokenService:
    """Issues and verifies access tokens; the only place a ``UserExecutionContext`` is built
    from a client credential."""

    def __init__(self, settings: AuthSettings, secret: str) -> None:
        self._settings = settings
        self._secret = secret

    def issue_access(self, user_id: str, *, roles: Sequence[str], tier: str) -> IssuedToken:
        now = int(time.time())
        ttl = self._settings.access_token_ttl_s
        jti = new_id("jti")
        claims = {
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "jti": jti,
            "typ": ACCESS,
            "roles": list(roles),
            "tier": tier,
        }
        token = jwt.encode(claims, self._secret, algorithm=self._settings.jwt_algorithm)
        return IssuedToken(token, ttl, jti)

    def verify_access(self, token: str) -> UserExecutionContext:
        """The caller's context, or ``Unauthenticated`` for any fault in the token."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._settings.jwt_algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=_LEEWAY_S,
                options={"require": ["sub", "exp", "iat", "nbf", "iss", "aud", "jti", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token") from None
        if claims.get("typ") != ACCESS:
            raise Unauthenticated("not an access token")
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("invalid token")
        sub, tier = claims.get("sub"), claims.get("tier", "free")
        if not isinstance(sub, str) or not isinstance(tier, str):
            raise Unauthenticated("invalid token")
        return UserExecutionContext(
            user_id=sub,
            roles=tuple(roles),
            permissions=permissions_for(roles),
            tier=tier,
        )
