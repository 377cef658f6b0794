"""A safe calculator: arithmetic parsed with ``ast`` and evaluated node by node. No ``eval``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated

from pydantic import Field

from netra.errors import ToolError
from netra.tools.tool import tool

_MAX_EXPRESSION = 500
_MAX_EXPONENT = 10_000
_MAX_MAGNITUDE = 10**300

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def evaluate(expression: str) -> float | int:
    """Evaluate arithmetic: numbers, + - * / // % **, parentheses, a few math functions."""
    if len(expression) > _MAX_EXPRESSION:
        raise ToolError(f"expression longer than {_MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from exc
    return _eval(tree.body)


def _eval(node: ast.expr) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ToolError("booleans are not numbers here")
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and len(node.args) <= 2
    ):
        try:
            return _FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ToolError(f"{node.func.id}: {exc}") from exc
    raise ToolError(f"unsupported element in expression: {ast.dump(node)[:60]}")


def _binary(node: ast.BinOp) -> float | int:
    left, right = _eval(node.left), _eval(node.right)
    if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
        raise ToolError(f"exponent larger than {_MAX_EXPONENT}")
    try:
        result = _BINARY[type(node.op)](left, right)
    except ZeroDivisionError as exc:
        raise ToolError("division by zero") from exc
    except OverflowError as exc:
        raise ToolError("result too large") from exc
    if isinstance(result, complex):
        raise ToolError("result is not a real number")
    if abs(result) > _MAX_MAGNITUDE:
        raise ToolError("result too large")
    return result


def _tidy(value: float | int) -> float | int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, float):
        return round(value, 12)
    return value


@tool(description="Evaluate an arithmetic expression exactly, e.g. '12*7' or 'sqrt(2)/3'.")
async def calculator(
    expression: Annotated[str, Field(min_length=1, max_length=_MAX_EXPRESSION)],
) -> dict[str, object]:
    # On the event loop, not in a worker thread: its work is bounded (the expression's
    # length, each exponent and each result's size) and takes microseconds, less than the
    # hop to a thread and back.
    return {"expression": expression, "result": _tidy(evaluate(expression))}
