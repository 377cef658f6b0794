"""``GET /openapi.json`` tells the truth, checked against the server that publishes it.

Every error answer an operation gives is documented, with the error body it really has; every
success answer has a typed body, and the server's real answers match it; every constraint the
server enforces on a request body is in the schema (a body the schema accepts is never refused
as invalid); and requests built from the schema's own examples succeed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema

from tests.conftest import ServerFactory
from tests.support import LiveServer, User, add_mailer, grant_admin, make_user, open_socket

Operation = tuple[str, str, dict[str, Any]]
CONFIGURED = {("UserChange", "tier"): "tier"}
"""Fields checked against configuration, which a static schema cannot list: the field's
description must name the rule (and the probes leave the field alone)."""
OPEN_JSON = {("EventView", "data"), ("ToolView", "parameters")}
"""Success-body fields whose value is open JSON by nature: an event's payload, and a tool's
parameters (a JSON Schema). Every other part of every success body has a type."""


def _operations(schema: dict[str, Any]) -> Iterator[Operation]:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, name = node["$ref"].split("/")
        node = schema["components"]["schemas"][name]
    return node


def _body_model(schema: dict[str, Any], operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    return name, schema["components"]["schemas"][name]


def _validator(schema: dict[str, Any], node: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator of ``node`` whose ``#/components/...`` references reach the document."""
    return jsonschema.Draft202012Validator({**node, "components": schema["components"]})


def _success_bodies(schema: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """``(method, path, status, body schema)`` of every 2xx answer with a JSON body."""
    for method, path, operation in _operations(schema):
        for status, response in operation["responses"].items():
            body = response.get("content", {}).get("application/json")
            if status.startswith("2") and body is not None:
                yield method, path, status, body["schema"]


def _untyped(
    schema: dict[str, Any], node: dict[str, Any], where: str, seen: set[str]
) -> Iterator[str]:
    """The places under ``node`` that say nothing of their value: any value at all, or an
    object with neither properties nor typed values (``OPEN_JSON`` fields excepted)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            yield from _untyped(schema, schema["components"]["schemas"][name], name, seen)
        return
    options = [*node.get("anyOf", []), *node.get("oneOf", []), *node.get("allOf", [])]
    for option in options:
        yield from _untyped(schema, option, where, seen)
    kind = node.get("type")
    if options:
        return
    if kind is None and "enum" not in node and "const" not in node:
        yield f"{where}: any value"
    elif kind == "array":
        yield from _untyped(schema, node.get("items", {}), f"{where}[]", seen)
    elif kind == "object":
        values = node.get("additionalProperties", True)
        if not node.get("properties") and not isinstance(values, dict):
            yield f"{where}: an object of unknown fields"
        for name, field in node.get("properties", {}).items():
            if (where, name) not in OPEN_JSON:
                yield from _untyped(schema, field, f"{where}.{name}", seen)
        if isinstance(values, dict):
            yield from _untyped(schema, values, f"{where}.*", seen)


def _url(path: str) -> str:
    """The path with every parameter naming an object nobody has."""
    return re.sub(r"\{[^}]+\}", lambda m: f"x_{uuid.uuid4().hex[:12]}", path)


def _variants(field: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in field.get("anyOf", [field]) if v.get("type") != "null"]


def _probes(field: dict[str, Any], example: Any) -> list[Any]:
    """Values a careless or hostile client sends for a field of this schema. (No probe holds
    a lone surrogate: the server refuses those, and a JSON schema has no way to say so.)"""
    values: list[Any] = [None, 0, 5, True, "5", "", " ", "nope", [], {}]
    for variant in _variants(field):
        values += variant.get("enum", [])
        if variant.get("type") == "string":
            values += ["x", "a@b.co", "a\x00b", "   \t", f" {example} " if example else "y"]
            for length in (variant.get("minLength"), variant.get("maxLength")):
                if length is not None:
                    values += ["a" * max(0, length - 1), "a" * length, "a" * (length + 1)]
        elif variant.get("type") == "array":
            items = variant.get("items", {})
            members = [*items.get("enum", []), "nope", "", "x"]
            values += [[member] for member in members]
            values += [members[: i + 1] for i in range(len(members))]
            if "maxItems" in variant and members:
                values += [[members[0]] * (variant["maxItems"] + 1)]
        elif variant.get("type") == "boolean":
            values += [False, "true", 1]
    return values


async def test_every_error_answer_is_documented_with_the_error_body(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    schema = (await http.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps(schema), "FastAPI's 422 body is not ours"
    error_body = schema["components"]["schemas"]["ErrorBody"]
    error_fields = _resolve(schema, error_body["properties"]["error"])
    assert set(error_fields["properties"]) == {"code", "message", "request_id", "details"}
    openai_body = schema["components"]["schemas"]["OpenAIErrorBody"]
    openai_fields = _resolve(schema, openai_body["properties"]["error"])
    assert set(openai_fields["properties"]) == {"message", "type", "param", "code"}

    wrong = []
    for method, path, operation in _operations(schema):
        responses = operation["responses"]
        where = f"{method} {path}"
        # The OpenAI-compatible API answers OpenAI's error body, the rest Netra's.
        body_name = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
        for status, response in responses.items():
            if status.startswith("4"):
                documented = response["content"]["application/json"]["schema"]
                if documented != {"$ref": f"#/components/schemas/{body_name}"}:
                    wrong.append(f"{where} {status}: body {documented}")
        needed = set()
        if operation.get("security"):
            needed.add("401")
        if "{" in path:
            needed.add("404")
        if "requestBody" in operation:
            needed |= {"413", "400" if path.startswith("/v1/") else "422"}
        # What the server does, not only what the schema says: anonymous callers.
        body = {} if "requestBody" in operation else None
        anonymous = await http.request(method, _url(path), json=body)
        if anonymous.status_code == 401 and not operation.get("security"):
            wrong.append(f"{where}: answers anonymous callers 401 but declares no security")
        if anonymous.status_code >= 400:
            needed.add(str(anonymous.status_code))
        if missing := needed - set(responses):
            wrong.append(f"{where}: undocumented {sorted(missing)} (documents {sorted(responses)})")
    assert not wrong, "\n".join(wrong)


async def test_a_body_the_schema_accepts_is_never_refused_as_invalid(
    server_factory: ServerFactory,
) -> None:
    """Every field of every request body, probed with the values clients get wrong: each
    probe the schema accepts must pass the server's validation, and every error the server
    answers must be documented for its operation, with the body the schema gives."""
    server = server_factory(
        auth={"login_failures_per_account": 1000, "login_failures_per_address": 1000}
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        schema = (await http.get("/openapi.json")).json()
        user, admin = await make_user(http, "probe"), await make_user(http, "probe-admin")
        grant_admin(server, admin.email)
        refused, probed = [], 0
        for method, path, operation in _operations(schema):
            if "requestBody" not in operation:
                continue
            name, model = _body_model(schema, operation)
            [example, *_] = model.get("examples") or [None]
            assert isinstance(example, dict), f"{name} has no example"
            validator = _validator(schema, model)
            assert validator.is_valid(example), f"{name}'s own example is invalid"
            caller = admin if path.startswith("/admin") else user
            for field_name, field in model["properties"].items():
                if (name, field_name) in CONFIGURED:
                    assert CONFIGURED[name, field_name] in field.get("description", ""), name
                    continue
                for probe in _probes(field, example.get(field_name)):
                    body = {**example, field_name: probe}
                    if not validator.is_valid(body):
                        continue
                    probed += 1
                    response = await http.request(
                        method, _url(path), json=body, headers=caller.auth
                    )
                    status = str(response.status_code)
                    if status in ("400", "413", "422") or status.startswith("5"):
                        refused.append(f"{method} {path} {body!r}: {status} {response.text[:200]}")
                        continue
                    if status.startswith("4"):
                        documented = operation["responses"].get(status)
                        if documented is None:
                            refused.append(f"{method} {path} answered undocumented {status}")
                            continue
                        body_schema = documented["content"]["application/json"]["schema"]
                        if not _validator(schema, body_schema).is_valid(response.json()):
                            refused.append(f"{method} {path} {status}: {response.text[:200]}")
        assert probed > 50, probed
        assert not refused, "the schema accepts what the server refuses:\n" + "\n".join(refused)


async def test_requests_made_from_the_schemas_examples_succeed(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    schema = (await http.get("/openapi.json")).json()
    operations = {(method, path): op for method, path, op in _operations(schema)}

    def example(method: str, path: str) -> dict[str, Any]:
        _, model = _body_model(schema, operations[method, path])
        body: dict[str, Any] = model["examples"][0]
        return body

    # Sign up and sign in as the examples say: the two examples are one person.
    registered = await http.post("/auth/register", json=example("POST", "/auth/register"))
    assert registered.status_code == 201, registered.text
    signed_in = await http.post("/auth/login", json=example("POST", "/auth/login"))
    assert signed_in.status_code == 200, signed_in.text
    auth = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    thread = await http.post("/threads", json=example("POST", "/threads"), headers=auth)
    assert thread.status_code == 201, thread.text
    run = await http.post(
        f"/threads/{thread.json()['id']}/runs",
        json=example("POST", "/threads/{thread_id}/runs"),
        headers=auth,
    )
    assert run.status_code == 202, run.text

    admin = await make_user(http, "admin")
    grant_admin(server, admin.email)
    changed = await http.patch(
        f"/admin/users/{registered.json()['id']}",
        json=example("PATCH", "/admin/users/{user_id}"),
        headers=admin.auth,
    )
    assert changed.status_code == 200, changed.text

    # The rest need objects an example cannot name (a refresh token, a paused tool call):
    # their examples pass validation, and the answer is a documented one.
    for method, path in (
        ("POST", "/auth/refresh"),
        ("POST", "/runs/{run_id}/tool_calls/{tool_call_id}/decision"),
    ):
        response = await http.request(method, _url(path), json=example(method, path), headers=auth)
        assert response.status_code in (401, 404), response.text
        assert str(response.status_code) in operations[method, path]["responses"]


async def test_every_success_answer_has_a_typed_body(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    schema = (await http.get("/openapi.json")).json()
    untyped: list[str] = []
    seen: set[str] = set()
    bodies = 0
    for method, path, status, body in _success_bodies(schema):
        bodies += 1
        resolved = _resolve(schema, body)
        if not resolved.get("properties"):
            untyped.append(f"{method} {path} {status}: no properties ({body})")
        untyped += [
            f"{method} {path} {status}: {place}"
            for place in _untyped(schema, body, f"{method} {path}", seen)
        ]
    assert bodies > 15, bodies
    assert not untyped, "success bodies the schema leaves untyped:\n" + "\n".join(untyped)


class _Answers:
    """Real answers of a live server, each kept with the operation that gave it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.kept: list[tuple[str, str, httpx.Response]] = []

    async def __call__(
        self, method: str, path: str, user: User | None = None, **params: Any
    ) -> Any:
        """Call ``path`` (a template of the schema) with ``params`` filling it; its body."""
        url = path.format(**{k: v for k, v in params.items() if k not in ("json", "query")})
        response = await self.http.request(
            method,
            url,
            json=params.get("json"),
            params=params.get("query"),
            headers=user.auth if user else None,
        )
        assert response.status_code < 300, f"{method} {url}: {response.text}"
        self.kept.append((method, path, response))
        return response.json()


async def test_the_servers_real_answers_match_their_documented_bodies(
    server_factory: ServerFactory,
) -> None:
    """Every operation with a JSON success body is called for real, with the answers a
    client sees after a run with tools, a paused run, a cancel and admin work, and each
    answer validates against the schema the operation documents for its status."""
    server = add_mailer(server_factory())
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        call = _Answers(http)
        person = {"email": f"doc-{uuid.uuid4().hex[:8]}@example.com", "password": "p" * 12}
        await call("POST", "/auth/register", json=person)
        pair = await call("POST", "/auth/login", json=person)
        pair = await call("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        user = await make_user(http, "doc")
        socket = await open_socket(server, user.token)

        thread = await call("POST", "/threads", user, json={"title": "Sums"})
        ack = await call(
            "POST",
            "/threads/{thread_id}/runs",
            user,
            thread_id=thread["id"],
            json={"content": "what is 12*7?"},
        )
        await socket.run_to_end(ack["run_id"])
        edited = await call(
            "POST",
            "/threads/{thread_id}/messages/{message_id}/edit",
            user,
            thread_id=thread["id"],
            message_id=ack["message_id"],
            json={"content": "what is 12*8?"},
        )
        await socket.run_to_end(edited["run_id"])
        again = await call(
            "POST",
            "/threads/{thread_id}/messages/{message_id}/regenerate",
            user,
            thread_id=thread["id"],
            message_id=edited["message_id"],
            json={},
        )
        await socket.run_to_end(again["run_id"])
        await call(
            "PUT",
            "/threads/{thread_id}/active_leaf",
            user,
            thread_id=thread["id"],
            json={"message_id": ack["message_id"]},
        )
        await call("GET", "/threads/{thread_id}/tree", user, thread_id=thread["id"])
        await call(
            "POST",
            "/threads/{thread_id}/fork",
            user,
            thread_id=thread["id"],
            json={"at_message_id": ack["message_id"]},
        )
        mail = await call("POST", "/threads", user, json={"agent": "mailer"})
        paused = await call(
            "POST",
            "/threads/{thread_id}/runs",
            user,
            thread_id=mail["id"],
            json={"content": "mail my boss"},
        )
        await socket.first(lambda f: f["type"] == "approval_required")
        await call(
            "POST",
            "/runs/{run_id}/tool_calls/{tool_call_id}/decision",
            user,
            run_id=paused["run_id"],
            tool_call_id="call_mail",
            json={"decision": "deny"},
        )
        await socket.run_to_end(paused["run_id"])
        await socket.close()

        for run_id in (ack["run_id"], paused["run_id"]):
            await call("GET", "/runs/{run_id}", user, run_id=run_id)
            await call("GET", "/runs/{run_id}/events", user, run_id=run_id)
        await call("POST", "/runs/{run_id}/cancel", user, run_id=ack["run_id"])
        await call("GET", "/events", user, query={"after_seq": 0})
        await call("GET", "/threads", user)
        await call("GET", "/threads/search", user, query={"q": "sums"})
        await call("GET", "/threads/{thread_id}", user, thread_id=thread["id"])
        await call(
            "PATCH", "/threads/{thread_id}", user, thread_id=thread["id"], json={"title": "Sums!"}
        )
        await call("GET", "/threads/{thread_id}/messages", user, thread_id=thread["id"])
        await call("GET", "/threads/{thread_id}/runs", user, thread_id=thread["id"])
        await call("GET", "/threads/{thread_id}/events", user, thread_id=thread["id"])
        await call("GET", "/me", user)
        await call("GET", "/me/usage", user, query={"group_by": "model"})
        await call("GET", "/agents", user)
        await call("GET", "/tools", user)
        await call("GET", "/health")
        await call("GET", "/ready")
        key = await call(
            "POST", "/me/api-keys", user, json={"name": "sdk", "scopes": ["runs:write"]}
        )
        assert server.watch is not None
        server.watch.plant(key["secret"])
        sdk = User(user.email, user.password, key["secret"], user.id, http)
        await call("GET", "/v1/models", sdk)
        question = [{"role": "user", "content": "what is 12*7?"}]
        await call(
            "POST", "/v1/chat/completions", sdk, json={"model": "assistant", "messages": question}
        )
        answered = await call(
            "POST", "/v1/responses", sdk, json={"model": "assistant", "input": "what is 12*7?"}
        )
        await call("GET", "/v1/responses/{response_id}", user, response_id=answered["id"])

        admin = await make_user(http, "doc-admin")
        grant_admin(server, admin.email)
        await call("GET", "/admin/users", admin)
        await call("PATCH", "/admin/users/{user_id}", admin, user_id=user.id, json={"tier": "pro"})
        await call("GET", "/admin/users/{user_id}", admin, user_id=user.id)
        await call("GET", "/admin/usage", admin, query={"group_by": "tier"})
        await call(
            "PUT",
            "/admin/users/{user_id}/limits",
            admin,
            user_id=user.id,
            json={"max_steps": 8, "allowed_tools": None},
        )
        await call("GET", "/admin/instances", admin)
        org = await call("POST", "/admin/orgs", admin, json={"name": "Docs", "usd_per_day": 5})
        await call(
            "PUT",
            "/admin/orgs/{org_id}/members/{user_id}",
            admin,
            org_id=org["id"],
            user_id=user.id,
            json={"role": "admin"},
        )
        await call("GET", "/admin/orgs", admin)
        await call("GET", "/admin/orgs/{org_id}", admin, org_id=org["id"])
        await call(
            "PATCH", "/admin/orgs/{org_id}", admin, org_id=org["id"], json={"usd_per_month": 50}
        )
        await call("GET", "/org/members", user)
        await call("GET", "/org/usage", user, query={"group_by": "model"})
        await call("GET", "/me", user)  # a member now
        key = await call(
            "POST", "/me/api-keys", user, json={"name": "docs", "scopes": ["threads:read"]}
        )
        assert server.watch is not None
        server.watch.plant(key["secret"])
        await call("GET", "/me/api-keys", user)
        await call("GET", "/admin/users/{user_id}/api-keys", admin, user_id=user.id)

        schema = (await http.get("/openapi.json")).json()
        documented = {(m, p, s): body for m, p, s, body in _success_bodies(schema)}
        wrong = []
        for method, path, response in call.kept:
            body = documented.get((method, path, str(response.status_code)))
            if body is None:
                wrong.append(f"{method} {path}: {response.status_code} is not documented")
                continue
            for error in _validator(schema, body).iter_errors(response.json()):
                where = "/".join(str(p) for p in error.absolute_path)
                wrong.append(f"{method} {path} at {where or 'the top'}: {error.message}")
        called = {(method, path) for method, path, _ in call.kept}
        missed = {(m, p) for m, p, _ in documented} - called
        assert not missed, f"operations with a JSON body this test never called: {missed}"
        assert not wrong, "answers that do not match their schema:\n" + "\n".join(wrong)
