from __future__ import annotations

import json

import pytest

from netra.context import MAX_DEPTH, UserExecutionContext
from netra.errors import InvalidRequest


def test_contexts_are_frozen_and_validate_ids() -> None:
    ctx = UserExecutionContext(user_id="usr_1")
    with pytest.raises(AttributeError):
        ctx.user_id = "usr_2"  # type: ignore[misc]
    for bad in ("", "system", "registry", "  "):
        with pytest.raises(InvalidRequest):
            UserExecutionContext(user_id=bad)


def test_children_go_one_level_deeper_up_to_the_limit() -> None:
    ctx = UserExecutionContext(user_id="usr_1").with_run(thread_id="th_1", run_id="run_1")
    child = ctx.child(run_id="run_2")
    assert child.parent_run_id == "run_1" and child.depth == 1
    assert child.request_id != ctx.request_id and child.correlation_id == ctx.correlation_id
    for _ in range(MAX_DEPTH - 1):
        child = child.child(run_id="run_x")
    with pytest.raises(InvalidRequest):
        child.child(run_id="run_y")


def test_to_dict_is_json_safe() -> None:
    ctx = UserExecutionContext(user_id="usr_1", permissions=frozenset({"chat"}))
    assert json.loads(json.dumps(ctx.to_dict()))["permissions"] == ["chat"]


def test_metadata_is_a_deep_copy_and_cannot_shadow_identity() -> None:
    client = {"agent": {"name": "netra-web", "tags": ["a"]}}
    ctx = UserExecutionContext(user_id="usr_1", metadata=client)
    client["agent"]["tags"].append("b")
    assert ctx.metadata["agent"]["tags"] == ["a"]
    with pytest.raises(TypeError):
        ctx.metadata["agent"] = {}  # type: ignore[index]
    exported = ctx.to_dict()["metadata"]
    exported["agent"]["tags"].append("c")
    assert ctx.metadata["agent"]["tags"] == ["a"]
    for reserved in ("user_id", "roles", "tier", "permissions", "trail"):
        with pytest.raises(InvalidRequest, match="reserved"):
            UserExecutionContext(user_id="usr_1", metadata={reserved: "admin"})
    with pytest.raises(InvalidRequest, match="JSON-safe"):
        UserExecutionContext(user_id="usr_1", metadata={"when": object()})
    with pytest.raises(InvalidRequest, match="larger"):
        UserExecutionContext(user_id="usr_1", metadata={"blob": "x" * 5000})


def test_the_audit_trail_records_how_a_context_was_derived() -> None:
    ctx = UserExecutionContext(user_id="usr_1", session_id="ses_1", trail=("session:ses_1",))
    request = ctx.for_request("ws", "req_7")
    assert request.request_id == request.correlation_id == "req_7"
    run = request.with_run(thread_id="th_1", run_id="run_1")
    child = run.child(run_id="run_2")
    assert child.trail == ("session:ses_1", "ws:req_7", "run:run_1", "child:run_2")
    assert child.correlation_id == "req_7" and ctx.trail == ("session:ses_1",)
    assert json.loads(json.dumps(child.to_dict()))["trail"][-1] == "child:run_2"
