"""Access tokens: signed JWTs with pinned algorithm, issuer, audience and type.

Claims: ``sub, iat, nbf, exp, iss, aud, jti, typ, sid, roles, tier``. ``sid`` names the
session (one sign-in); a revoked session's access tokens are refused at once, see
``netra.auth.sessions``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from netra.errors import Unauthenticated
from netra.ids import new_id
from netra.settings import AuthSettings

ACCESS = "access"
_LEEWAY_S = 5
_REQUIRED = ["sub", "exp", "iat", "nbf", "iss", "aud", "jti", "typ", "sid"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    jti: str


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says; not yet checked against the session store."""

    user_id: str
    session_id: str
    expires_at: float | None
    """Epoch seconds until which the token is accepted (its ``exp`` plus the clock leeway);
    None: never (an API key without an expiry, ``netra.auth.api_keys``)."""
    roles: tuple[str, ...]
    tier: str


class TokenService:
    """Signs and verifies access tokens."""

    def __init__(self, settings: AuthSettings, secret: str) -> None:
        self._settings = settings
        self._secret = secret

    def issue_access(
        self, user_id: str, *, session_id: str, roles: Sequence[str], tier: str
    ) -> IssuedToken:
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
            "sid": session_id,
            "roles": list(roles),
            "tier": tier,
        }
        token = jwt.encode(claims, self._secret, algorithm=self._settings.jwt_algorithm)
        return IssuedToken(token, ttl, jti)

    def verify_access(self, token: str) -> AccessClaims:
        """The token's claims, or ``Unauthenticated`` for any fault in the token."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._settings.jwt_algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                # The dates are checked below, not by PyJWT: it reads them with ``int()``, which
                # takes "9999999999" and True; a NumericDate is a JSON number (RFC 7519).
                options={
                    "require": _REQUIRED,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token") from None
        exp, iat, nbf = (_numeric_date(claims[name]) for name in ("exp", "iat", "nbf"))
        now = time.time()
        if exp <= now - _LEEWAY_S:
            raise Unauthenticated("token expired", code="token_expired")
        if iat > now + _LEEWAY_S or nbf > now + _LEEWAY_S:
            raise Unauthenticated("invalid token")
        if claims.get("typ") != ACCESS:
            raise Unauthenticated("not an access token")
        roles = claims.get("roles") or []
        sub, sid, tier = claims.get("sub"), claims.get("sid"), claims.get("tier", "free")
        if (
            not isinstance(roles, list)
            or not all(isinstance(role, str) for role in roles)
            or not isinstance(sub, str)
            or not isinstance(sid, str)
            or not isinstance(tier, str)
        ):
            raise Unauthenticated("invalid token")
        return AccessClaims(sub, sid, exp + _LEEWAY_S, tuple(roles), tier)


def _numeric_date(value: object) -> float:
    """A claim's NumericDate: a finite JSON number (not a string of digits, not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthenticated("invalid token")
    return float(value)
