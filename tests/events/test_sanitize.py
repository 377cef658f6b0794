from __future__ import annotations

from netra.events.sanitize import REDACTED, sanitize


def test_secrets_are_redacted_by_key_and_usage_is_not() -> None:
    payload = {
        "api_key": "sk-123",
        "Authorization": "Bearer x",
        "nested": {"password": "hunter2", "db_password": "p", "note": "fine"},
        "input_tokens": 12,
        "access_token": "t",
        "items": [{"secret": "s"}],
    }
    clean = sanitize(payload, max_string=100, max_items=10)
    assert clean["api_key"] == REDACTED and clean["Authorization"] == REDACTED
    assert clean["nested"] == {"password": REDACTED, "db_password": REDACTED, "note": "fine"}
    assert clean["input_tokens"] == 12
    assert clean["access_token"] == REDACTED
    assert clean["items"] == [{"secret": REDACTED}]


def test_long_strings_and_lists_are_truncated_with_a_marker() -> None:
    clean = sanitize({"text": "x" * 50, "list": list(range(8))}, max_string=10, max_items=3)
    assert clean["text"] == "x" * 10 + "…[truncated 40 chars]"
    assert clean["list"] == [0, 1, 2, "…[truncated 5 items]"]
