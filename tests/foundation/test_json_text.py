"""JSON text: the standard library's compact form, made in C, and never a value lost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from netra.json_text import dumps


def test_the_text_is_the_standard_librarys_compact_utf8_form() -> None:
    value = {"a": [1, 2.5, None, True], "é": 'naïve \u2028 "q"', "n": {"x": -3}}
    assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_keys_that_are_not_strings_become_strings_as_with_the_standard_library() -> None:
    assert json.loads(dumps({1: "a", 2.5: "b", None: "c"})) == {"1": "a", "2.5": "b", "null": "c"}


def test_a_float_json_cannot_carry_is_null_not_invalid_json() -> None:
    assert dumps({"x": float("nan"), "y": float("inf")}) == '{"x":null,"y":null}'


def test_an_integer_beyond_64_bits_is_written_whole() -> None:
    assert json.loads(dumps({"big": 2**70})) == {"big": 2**70}


@dataclass
class _Point:
    x: int


def test_datetimes_and_dataclasses_go_to_default_as_with_the_standard_library() -> None:
    at = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    value = {"at": at, "p": _Point(1)}
    assert dumps(value, default=str) == json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), default=str
    )


def test_what_json_has_no_type_for_raises_type_error_without_a_default() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})
