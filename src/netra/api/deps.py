"""FastAPI dependencies as ``Annotated`` aliases: ``AppState``, ``CurrentUser``, ``AdminUser``,
``OrgAdmin``, ``StreamToken`` and ``PathId``, the type of every id in a URL path."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from netra.auth.tokens import AccessClaims
from netra.context import UserExecutionContext
from netra.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from netra.instance import Netra

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /auth/login")


def _netra(request: Request) -> Netra:
    netra: Netra = request.app.state.netra
    return netra


AppState = Annotated["Netra", Depends(_netra)]
PathId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="An id as the server hands them out (letters, digits, `_.:-`)",
    ),
]
"""An id in a URL path: what no id can be (a NUL, which PostgreSQL refuses in text, a page of
text) is refused with 422 before it reaches the database; any other unknown id is 404."""


async def _current_user(
    request: Request,
    netra: AppState,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserExecutionContext:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token")
    ctx, _ = await netra.sessions.authenticate(
        credentials.credentials, request_id=getattr(request.state, "request_id", None)
    )
    request.state.user_id = ctx.user_id
    return ctx


CurrentUser = Annotated[UserExecutionContext, Depends(_current_user)]


def _org_admin(ctx: CurrentUser) -> UserExecutionContext:
    if ctx.org is None or not ctx.org.admin:
        raise PermissionDenied("organisation admins only")
    return ctx


OrgAdmin = Annotated[UserExecutionContext, Depends(_org_admin)]
"""A signed-in admin of an organisation (``ctx.org`` is its membership)."""


async def _stream_token(
    request: Request,
    netra: AppState,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token")
    claims = netra.sessions.verify(credentials.credentials)
    request.state.user_id = claims.user_id
    return claims


StreamToken = Annotated[AccessClaims, Depends(_stream_token)]
"""The bearer token of a connection that outlives its request (an SSE stream): signature
and claims verified, its session NOT yet — the stream is admitted like a socket
(``AdmissionReads.enter``), which checks the session after subscribing, so a revocation
that arrives meanwhile refuses it. Any other route takes ``CurrentUser``."""


def _admin(ctx: CurrentUser) -> UserExecutionContext:
    if not ctx.has_permission("admin"):
        raise PermissionDenied("administrators only")
    return ctx


AdminUser = Annotated[UserExecutionContext, Depends(_admin)]
REFUSALS: dict[Callable[..., object], tuple[int, ...]] = {
    _current_user: (401,),
    _stream_token: (401,),
    _admin: (403,),
    _org_admin: (403,),
}
"""The statuses each dependency answers instead of the route (the schema documents them)."""


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
