"""Every HTTP route × every kind of caller → the expected status, on both backends.

The routes come from the OpenAPI schema, so a new route that is not in ``ROUTES`` fails the
test until someone decides who may call it, and with which API key scope. Another user's
object must be indistinguishable from a missing one, for administrators too: no route reads
another user's conversations. An API key acts as its user within its scopes, and never on a
route for signed-in sessions (its keys, logout, administration).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from netra.models.base import ModelRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import tool
from tests.conftest import ServerFactory
from tests.security.principals import (
    ALL,
    BAD,
    GOOD,
    KEYS,
    Principals,
    build_principals,
    fresh_token,
)
from tests.support import LiveServer, make_key, open_socket

Access = Literal["public", "user", "owned", "admin", "org_admin"]


@dataclass(frozen=True)
class World:
    """The objects the matrix aims at: all the owner's."""

    server: LiveServer
    http: httpx.AsyncClient
    who: Principals
    thread_id: str
    run_id: str
    message_id: str
    """The thread's first message: edited, answered again, the branch switched to."""
    doomed_thread_ids: dict[str, str]
    """More threads of the owner's, for the route that deletes one: one for each principal
    that may delete it (the owner, and the owner's key that may write threads)."""
    key_id: str
    """A spare API key of the owner's, for the route that revokes one."""
    other_key_id: str
    """An API key of the other user's, for the administrators' route that revokes one."""
    org_id: str
    """The owner's organisation: the owner is its admin, the other user a member."""
    doomed_org_id: str
    """A second organisation, for the route that deletes one."""

    def path(self, template: str, route: Route, principal: str) -> str:
        doomed = self.doomed_thread_ids.get(principal, self.doomed_thread_ids["owner"])
        path = template.format(
            org_id=self.doomed_org_id if route.doomed else self.org_id,
            thread_id=doomed if route.doomed else self.thread_id,
            run_id=self.run_id,
            response_id=self.run_id,
            message_id=self.message_id,
            tool_call_id=TOOL_CALL_ID,
            user_id=self.who.other.id,
            key_id=self.other_key_id if template.startswith("/admin") else self.key_id,
        )
        return f"{path}?{route.query}" if route.query else path


Body = Callable[[World, str], Awaitable[Any]]


async def _nothing(_world: World, _principal: str) -> None:
    return None


async def _register(_world: World, _principal: str) -> dict[str, str]:
    return {"email": f"new-{uuid.uuid4().hex[:10]}@example.com", "password": "long enough pw"}


async def _login(world: World, _principal: str) -> dict[str, str]:
    return {"email": world.who.owner.email, "password": world.who.owner.password}


async def _refresh(world: World, _principal: str) -> dict[str, str]:
    signed_in = await world.http.post("/auth/login", json=await _login(world, _principal))
    return {"refresh_token": signed_in.json()["refresh_token"]}


async def _message(_world: World, principal: str) -> dict[str, str]:
    return {"content": f"matrix message from {principal}"}


async def _thread(_world: World, _principal: str) -> dict[str, str]:
    return {"title": "matrix thread"}


async def _rename(_world: World, _principal: str) -> dict[str, str]:
    return {"title": "matrix rename"}


async def _edit(_world: World, principal: str) -> dict[str, str]:
    return {"content": f"matrix edit from {principal}"}


async def _empty(_world: World, _principal: str) -> dict[str, str]:
    return {}


async def _branch(world: World, _principal: str) -> dict[str, str]:
    return {"message_id": world.message_id}


async def _fork(world: World, _principal: str) -> dict[str, str]:
    return {"at_message_id": world.message_id}


async def _decision(_world: World, _principal: str) -> dict[str, str]:
    return {"decision": "deny"}


async def _limits(_world: World, _principal: str) -> dict[str, int]:
    return {"max_steps": 12}


async def _user_change(_world: World, _principal: str) -> dict[str, str]:
    return {"tier": "free"}


async def _new_org(_world: World, _principal: str) -> dict[str, str]:
    return {"name": f"org-{uuid.uuid4().hex[:10]}"}


async def _org_change(_world: World, _principal: str) -> dict[str, float]:
    return {"usd_per_month": 100.0}


async def _member(_world: World, _principal: str) -> dict[str, str]:
    return {"role": "member"}


async def _chat(_world: World, principal: str) -> dict[str, object]:
    question = {"role": "user", "content": f"matrix chat from {principal}"}
    return {"model": "assistant", "messages": [question], "stream": True}


async def _respond(_world: World, principal: str) -> dict[str, object]:
    return {"model": "assistant", "input": f"matrix response from {principal}"}


async def _new_key(_world: World, principal: str) -> dict[str, object]:
    return {"name": f"matrix key of {principal}", "scopes": ["threads:read"]}


@dataclass(frozen=True)
class Route:
    access: Access
    ok: int
    """Status for a caller who may use the route."""
    body: Body = _nothing
    own_session: bool = False
    """Callers with a valid credential spend a fresh sign-in of their own (logout)."""
    doomed: bool = False
    """Aimed at the owner's second thread (or the second organisation), which the call
    that may delete it deletes."""
    query: str = ""
    """The query string a caller who may use the route sends."""
    stream: bool = False
    """Answers a stream that need not end (Server-Sent Events): its status is read, and an
    error's body, then the connection is closed."""
    scope: str | None = None
    """What an API key needs to call it: a scope, ``ANY`` key, or None: a signed-in session
    only (a key is refused whatever its scopes)."""


ANY = "any"
READ, WRITE, RUN = "threads:read", "threads:write", "runs:write"


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/health"): Route("public", 200),
    ("GET", "/ready"): Route("public", 200),
    ("GET", "/metrics"): Route("public", 200),
    ("POST", "/auth/register"): Route("public", 201, _register),
    ("POST", "/auth/login"): Route("public", 200, _login),
    ("POST", "/auth/refresh"): Route("public", 200, _refresh),
    ("POST", "/auth/logout"): Route("user", 204, own_session=True),
    ("GET", "/me"): Route("user", 200, scope=ANY),
    ("GET", "/me/usage"): Route("user", 200, scope=READ),
    ("POST", "/me/api-keys"): Route("user", 201, _new_key),
    ("GET", "/me/api-keys"): Route("user", 200),
    ("DELETE", "/me/api-keys/{key_id}"): Route("owned", 204),
    ("GET", "/admin/usage"): Route("admin", 200),
    ("GET", "/agents"): Route("user", 200, scope=ANY),
    ("GET", "/tools"): Route("user", 200, scope=ANY),
    ("GET", "/threads"): Route("user", 200, scope=READ),
    ("GET", "/threads/search"): Route("user", 200, query="q=matrix", scope=READ),
    ("POST", "/threads"): Route("user", 201, _thread, scope=WRITE),
    ("GET", "/events"): Route("user", 200, scope=READ),
    ("GET", "/threads/{thread_id}"): Route("owned", 200, scope=READ),
    ("PATCH", "/threads/{thread_id}"): Route("owned", 200, _rename, scope=WRITE),
    ("DELETE", "/threads/{thread_id}"): Route("owned", 204, doomed=True, scope=WRITE),
    ("GET", "/threads/{thread_id}/messages"): Route("owned", 200, scope=READ),
    ("GET", "/threads/{thread_id}/runs"): Route("owned", 200, scope=READ),
    ("GET", "/threads/{thread_id}/events"): Route("owned", 200, scope=READ),
    ("POST", "/threads/{thread_id}/runs"): Route("owned", 202, _message, scope=RUN),
    # the owner's edit and regeneration branch off the first message; the switch goes back
    ("POST", "/threads/{thread_id}/messages/{message_id}/edit"): Route(
        "owned", 202, _edit, scope=RUN
    ),
    ("POST", "/threads/{thread_id}/messages/{message_id}/regenerate"): Route(
        "owned", 202, _empty, scope=RUN
    ),
    ("PUT", "/threads/{thread_id}/active_leaf"): Route("owned", 200, _branch, scope=WRITE),
    ("GET", "/threads/{thread_id}/tree"): Route("owned", 200, scope=READ),
    ("POST", "/threads/{thread_id}/fork"): Route("owned", 201, _fork, scope=WRITE),
    ("GET", "/runs/{run_id}"): Route("owned", 200, scope=READ),
    ("POST", "/runs/{run_id}/cancel"): Route("owned", 202, scope=RUN),
    ("POST", "/runs/{run_id}/tool_calls/{tool_call_id}/decision"): Route(
        "owned", 200, _decision, scope=RUN
    ),
    ("GET", "/runs/{run_id}/events"): Route("owned", 200, scope=READ),
    ("GET", "/events/stream"): Route("user", 200, stream=True, scope=READ),
    ("GET", "/runs/{run_id}/stream"): Route("owned", 200, stream=True, scope=READ),
    ("GET", "/admin/users"): Route("admin", 200),
    ("GET", "/admin/instances"): Route("admin", 200),
    ("PATCH", "/admin/users/{user_id}"): Route("admin", 200, _user_change),
    ("GET", "/admin/users/{user_id}"): Route("admin", 200),
    ("PUT", "/admin/users/{user_id}/limits"): Route("admin", 200, _limits),
    ("POST", "/admin/orgs"): Route("admin", 201, _new_org),
    ("GET", "/admin/orgs"): Route("admin", 200),
    ("GET", "/admin/orgs/{org_id}"): Route("admin", 200),
    ("PATCH", "/admin/orgs/{org_id}"): Route("admin", 200, _org_change),
    ("DELETE", "/admin/orgs/{org_id}"): Route("admin", 204, doomed=True),
    # the other user, a member already, stays one; then leaves the owner's organisation
    ("PUT", "/admin/orgs/{org_id}/members/{user_id}"): Route("admin", 200, _member),
    ("DELETE", "/admin/orgs/{org_id}/members/{user_id}"): Route("admin", 204),
    ("GET", "/org/members"): Route("org_admin", 200),
    ("GET", "/org/usage"): Route("org_admin", 200),
    ("GET", "/admin/users/{user_id}/api-keys"): Route("admin", 200),
    ("DELETE", "/admin/users/{user_id}/api-keys/{key_id}"): Route("admin", 204),
    # the OpenAI-compatible API: a new run in a new thread (streamed, or answered whole)
    ("GET", "/v1/models"): Route("user", 200, scope=ANY),
    ("POST", "/v1/chat/completions"): Route("user", 200, _chat, stream=True, scope=RUN),
    ("POST", "/v1/responses"): Route("user", 200, _respond, scope=RUN),
    ("GET", "/v1/responses/{response_id}"): Route(
        "owned", 200, query="stream=true", stream=True, scope=READ
    ),
}


def expected(route: Route, principal: str) -> int:
    if route.access == "public":
        return route.ok
    if principal in BAD:
        return 401
    if principal in KEYS:
        whose, scopes = KEYS[principal]
        if route.scope is None or (route.scope != ANY and route.scope not in scopes):
            return 403  # insufficient_scope, before the route looks at any object
        principal = whose
    if route.access == "owned" and principal != "owner":
        return 404  # another user's object, whoever asks: the same as a missing one
    if route.access == "admin" and principal != "admin":
        return 403
    if route.access == "org_admin" and principal != "owner":
        return 403  # a member of the organisation, and a user (an admin) in none
    return route.ok


def _shape(response: httpx.Response, *ids: str) -> dict[str, Any]:
    """An error body without what must differ: the request id (where the body has one) and
    the object's id."""
    error = dict(response.json()["error"])
    error.pop("request_id", None)
    for value in ids:
        error["message"] = error["message"].replace(value, "<id>")
    return error


TOOL_CALL_ID = "call_matrix"
FIRST_MESSAGE = "do the thing that needs approval"


def _script(request: ModelRequest) -> ScriptedTurn:
    """Ask for approval for the world's first message, answer plainly otherwise."""
    last = request.messages[-1]
    if last.role == "user" and last.content == FIRST_MESSAGE:
        return ScriptedTurn.call("matrix_action", {}, call_id=TOOL_CALL_ID)
    return ScriptedTurn.text("done")


async def _world(server: LiveServer, http: httpx.AsyncClient) -> World:
    """The owner's thread, with a run paused on a tool call that waits for approval."""

    @tool(description="Something that needs the user's approval.", requires_approval=True)
    def matrix_action() -> str:
        return "acted"

    server.netra.tools.register("matrix_action", matrix_action)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = _script
    who = await build_principals(server, http)
    socket = await open_socket(server, who.owner.token)
    ack = await socket.send_message(FIRST_MESSAGE)
    await socket.first(lambda f: f["type"] == "approval_required")
    await socket.close()
    doomed = {}
    for principal in ("owner", "owner_key"):
        thread = await http.post("/threads", json={"title": "doomed"}, headers=who.owner.auth)
        doomed[principal] = thread.json()["id"]
    spare = await make_key(server, who.owner, name="spare")
    others = await make_key(server, who.other, name="other's")
    admin = who.headers("admin")
    orgs = [
        (await http.post("/admin/orgs", json={"name": name}, headers=admin)).json()["id"]
        for name in ("matrix", "matrix doomed")
    ]
    for user, role in ((who.owner, "admin"), (who.other, "member")):
        await http.put(
            f"/admin/orgs/{orgs[0]}/members/{user.id}", json={"role": role}, headers=admin
        )
    return World(
        server,
        http,
        who,
        ack["thread_id"],
        ack["run_id"],
        ack["message_id"],
        doomed,
        spare["id"],
        others["id"],
        orgs[0],
        orgs[1],
    )


async def _call(
    http: httpx.AsyncClient, route: Route, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """The route's answer; a stream's body is read only when it is an error."""
    if not route.stream:
        return await http.request(method, url, **kwargs)
    async with http.stream(method, url, **kwargs) as response:
        if response.status_code >= 400:
            await response.aread()
        return response


async def test_authorization_matrix(server_factory: ServerFactory) -> None:
    server = server_factory(models={"default": "scripted"})
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        schema = (await http.get("/openapi.json")).json()
        routes = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
        assert routes == set(ROUTES), (
            f"routes missing from the matrix: {sorted(routes - set(ROUTES))}; "
            f"in the matrix but gone: {sorted(set(ROUTES) - routes)}"
        )
        world = await _world(server, http)
        failures = []
        for (method, template), route in ROUTES.items():
            for principal in ALL:
                headers = world.who.headers(principal)
                if route.own_session and principal in GOOD:
                    user = getattr(world.who, principal)
                    headers = {"Authorization": f"Bearer {await fresh_token(http, user)}"}
                response = await _call(
                    http,
                    route,
                    method,
                    world.path(template, route, principal),
                    json=await route.body(world, principal),
                    headers=headers,
                )
                want = expected(route, principal)
                if response.status_code != want:
                    failures.append(
                        f"{method} {template} as {principal}: {response.status_code} "
                        f"(expected {want}) {response.text[:200]}"
                    )
                    continue
                if response.status_code >= 400:
                    assert set(response.json()) == {"error"}, response.text
                if want == 401:
                    assert response.json()["error"]["code"] != "invalid_request"
                if want == 403 and principal in KEYS:
                    assert response.json()["error"]["code"] == "insufficient_scope"
                if want == 404 and route.access == "owned":
                    ours = (world.thread_id, *world.doomed_thread_ids.values(), world.run_id)
                    path = world.path(template, route, principal)
                    for value in (*ours, world.key_id):
                        kind = value.partition("_")[0]
                        path = path.replace(value, f"{kind}_{uuid.uuid4().hex}")
                    missing = await _call(
                        http,
                        route,
                        method,
                        path,
                        json=await route.body(world, principal),
                        headers=headers,
                    )
                    assert missing.status_code == 404
                    ids = re.findall(r"(?:th|run)_[0-9a-z]+", missing.text)
                    assert _shape(response, *ours) == _shape(missing, *ids), (
                        method,
                        template,
                        principal,
                    )
        assert not failures, "\n".join(failures)

        # Nothing the refused callers sent reached the owner's thread.
        messages = await http.get(
            f"/threads/{world.thread_id}/messages", headers=world.who.owner.auth
        )
        contents = [m["content"] for m in messages.json()["items"] if m["role"] == "user"]
        senders = [p for p in ALL if expected(ROUTES["POST", "/threads/{thread_id}/runs"], p) < 300]
        assert senders == ["owner", "owner_key", "runner_key"]
        assert contents == [FIRST_MESSAGE, *(f"matrix message from {p}" for p in senders)]
        for principal in ("other", "admin"):
            listed = await http.get("/threads", headers=world.who.headers(principal))
            assert world.thread_id not in listed.text
            events = await http.get("/events", headers=world.who.headers(principal))
            assert world.run_id not in events.text
