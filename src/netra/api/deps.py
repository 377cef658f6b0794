"""FastAPI dependencies as ``Annotated`` aliases: ``AppState``; the caller — ``CurrentUser``
(any credential), ``ThreadsReader``, ``ThreadsWriter`` and ``RunsWriter`` (an API key needs
the scope), ``SignedIn`` (a session, never a key), ``AdminUser`` and ``OrgAdmin``;
``StreamToken``, the credential of an SSE stream; and ``PathId``, the type of every id in a
URL path."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from netra.auth.api_keys import is_api_key
from netra.auth.scopes import Scope, require_scope, require_session
from netra.auth.tokens import AccessClaims
from netra.context import UserExecutionContext
from netra.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from netra.instance import Netra

_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from POST /auth/login, or an API key (`nk_…`) from "
    "POST /me/api-keys",
)


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
    credential = credentials.credentials
    request_id = getattr(request.state, "request_id", None)
    if is_api_key(credential):
        ctx = await netra.api_keys.authenticate(credential, request_id=request_id)
    else:
        ctx, _ = await netra.sessions.authenticate(credential, request_id=request_id)
    request.state.user_id = ctx.user_id
    return ctx


CurrentUser = Annotated[UserExecutionContext, Depends(_current_user)]
"""The caller, with any credential: an access token, or an API key whatever its scopes."""


async def _stream_token(
    request: Request,
    netra: AppState,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token")
    credential = credentials.credentials
    if is_api_key(credential):
        claims = await netra.api_keys.verify(credential)
    else:
        claims = netra.sessions.verify(credential)
    request.state.user_id = claims.user_id
    return claims


StreamToken = Annotated[AccessClaims, Depends(_stream_token)]
"""The credential of a connection that outlives its request (an SSE stream): a token's
signature and claims verified (an API key read), its session NOT yet — the stream is
admitted like a socket (``AdmissionReads.enter``), which checks the session after
subscribing, so a revocation that arrives meanwhile refuses it; a key then needs
``threads:read``. Any other route takes ``CurrentUser``."""


def _scoped(scope: Scope) -> Callable[[UserExecutionContext], UserExecutionContext]:
    def scoped(ctx: CurrentUser) -> UserExecutionContext:
        require_scope(ctx, scope)
        return ctx

    return scoped


_reads_threads = _scoped(Scope.THREADS_READ)
_writes_threads = _scoped(Scope.THREADS_WRITE)
_writes_runs = _scoped(Scope.RUNS_WRITE)
ThreadsReader = Annotated[UserExecutionContext, Depends(_reads_threads)]
"""The caller, whose API key (if it is one) has ``threads:read``."""
ThreadsWriter = Annotated[UserExecutionContext, Depends(_writes_threads)]
"""The caller, whose API key (if it is one) has ``threads:write``."""
RunsWriter = Annotated[UserExecutionContext, Depends(_writes_runs)]
"""The caller, whose API key (if it is one) has ``runs:write``."""


def _signed_in(ctx: CurrentUser) -> UserExecutionContext:
    require_session(ctx)
    return ctx


SignedIn = Annotated[UserExecutionContext, Depends(_signed_in)]
"""The caller, signed in: an access token, never an API key."""


def _org_admin(ctx: SignedIn) -> UserExecutionContext:
    if ctx.org is None or not ctx.org.admin:
        raise PermissionDenied("organisation admins only")
    return ctx


OrgAdmin = Annotated[UserExecutionContext, Depends(_org_admin)]
"""A signed-in admin of an organisation (``ctx.org`` is its membership)."""


def _admin(ctx: SignedIn) -> UserExecutionContext:
    if not ctx.has_permission("admin"):
        raise PermissionDenied("administrators only")
    return ctx


AdminUser = Annotated[UserExecutionContext, Depends(_admin)]
"""A signed-in administrator."""
REFUSALS: dict[Callable[..., object], tuple[int, ...]] = {
    _current_user: (401,),
    _reads_threads: (403,),
    _writes_threads: (403,),
    _writes_runs: (403,),
    _signed_in: (403,),
    _admin: (403,),
    _org_admin: (403,),
    _stream_token: (401,),
}
"""The statuses each dependency answers instead of the route (the schema documents them)."""


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
