from __future__ import annotations

import pytest

from netra.errors import ToolError
from netra.tools.calculator import calculator, evaluate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("12*7", 84),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("2 ** 10", 1024),
        ("2^8", 256),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-5 % 3", 1),
        ("sqrt(16)", 4.0),
        ("round(2.567, 2)", 2.57),
        ("abs(-3)", 3),
    ],
)
def test_arithmetic_is_evaluated(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "().__class__",
        "open('/etc/passwd')",
        "x",
        "lambda: 1",
        "[1, 2]",
        "'a' * 3",
        "1 if True else 2",
        "9 ** 99999",
        "1 / 0",
        "10 ** 400",
        "sqrt(-1)",
        "True + 1",
        "1 +",
        "a" * 600,
    ],
)
def test_anything_but_arithmetic_is_refused(expression: str) -> None:
    with pytest.raises(ToolError):
        evaluate(expression)


def test_the_tool_schema_comes_from_the_signature() -> None:
    spec = calculator.spec
    assert spec.name == "calculator"
    assert spec.parameters["required"] == ["expression"]
    assert spec.parameters["properties"]["expression"]["type"] == "string"
    assert spec.parameters["additionalProperties"] is False
