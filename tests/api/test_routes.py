"""A fresh server answers its first requests without building FastAPI's routes on the way:
they were built with the application, before it said it was ready."""

from __future__ import annotations

from typing import Any

import httpx
import pydantic
import pytest

from tests.support import make_user

ONE_PER_ROUTER = (
    "/health",  # system
    "/me",  # auth (signing up and in went first)
    "/me/api-keys",
    "/threads",
    "/runs/run_nonexistent",
    "/events",  # streams
    "/admin/users",
    "/admin/orgs",
    "/me/usage",
    "/v1/models",
)


async def test_the_first_request_to_each_router_builds_no_schema(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI builds a router's routes — their dependencies and the pydantic schemas of
    their bodies and answers — on the first request that reaches the router, unless they
    were built before. That took 100–650 ms per router on a fresh process, and seconds on a
    loaded machine (the request timed out). Seen here as pydantic ``TypeAdapter``s made
    while requests are served: there must be none."""
    built: list[Any] = []
    made = pydantic.TypeAdapter.__init__

    def counted(self: pydantic.TypeAdapter[Any], *args: Any, **kwargs: Any) -> None:
        built.append(args[0] if args else kwargs.get("type"))
        made(self, *args, **kwargs)

    monkeypatch.setattr(pydantic.TypeAdapter, "__init__", counted)
    user = await make_user(http)
    for path in ONE_PER_ROUTER:
        answer = await http.get(path, headers=user.auth)
        assert answer.status_code < 500, (path, answer.text)
    assert built == []
