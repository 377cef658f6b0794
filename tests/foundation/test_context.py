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
