"""The LangGraph side of ``bench/compare.py``: Netra's benchmark run, as a LangGraph graph.

One run is Netra's: "what is 12*7?" → a deterministic stand-in for a model asks for the
calculator → the tool node computes 84 → the model node answers. No network and no LLM, like
Netra's offline model. The nodes emit the 8 events a Netra run streams, as custom stream
events (``get_stream_writer``), with the same types and much the same data: ``agent_started``,
``agent_thinking``, ``tool_executing``, ``tool_completed``, ``agent_thinking``, two
``message_delta`` and ``agent_completed``. Loaded by ``langgraph dev`` (see langgraph.json),
never imported by Netra's code.
"""

from __future__ import annotations

import ast
import operator
import re
import time
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

MODEL = "bench-fake"
SIGNATURE = "(Netra's built-in offline model: no API key, no network.)"
_EXPRESSION = re.compile(r"\d+(?:\s*[-+*/]\s*\d+)+")
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def calculate(expression: str) -> float:
    """Arithmetic on numbers with + - * /, nothing else."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"not arithmetic: {expression!r}")

    return value(ast.parse(expression, mode="eval").body)


def model(state: State) -> dict[str, list[AnyMessage]]:
    """The fake model: a question → one calculator call; a tool result → the answer."""
    emit = get_stream_writer()
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        emit({"type": "agent_thinking", "data": {"text": "Reading the tool results…"}})
        first, rest = last.content.split(" ", 1) if isinstance(last.content, str) else ("", "")
        answer = [first, f" {rest}\n\n{SIGNATURE}"]
        for delta in answer:
            emit({"type": "message_delta", "data": {"delta": delta}})
        usage = {"input_tokens": 73, "output_tokens": 30, "cost_usd": 0.0}
        emit({"type": "agent_completed", "data": {"outcome": "completed", "usage": usage}})
        return {"messages": [AIMessage(content="".join(answer))]}
    emit({"type": "agent_started", "data": {"model": MODEL, "attempt": 1}})
    emit({"type": "agent_thinking", "data": {"text": "Thinking…"}})
    text = last.content if isinstance(last.content, str) else ""
    found = _EXPRESSION.search(text)
    if found is None:
        emit({"type": "agent_completed", "data": {"outcome": "completed", "usage": {}}})
        return {"messages": [AIMessage(content="I only do arithmetic.")]}
    call = {"id": "call_calc", "name": "calculator", "args": {"expression": found.group(0)}}
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


def tools(state: State) -> dict[str, list[AnyMessage]]:
    """Runs the calculator for every call of the model's last message."""
    emit = get_stream_writer()
    last = state["messages"][-1]
    results: list[AnyMessage] = []
    for call in getattr(last, "tool_calls", []):
        arguments: dict[str, Any] = call["args"]
        emit(
            {
                "type": "tool_executing",
                "data": {"tool_call_id": call["id"], "tool": "calculator", "arguments": arguments},
            }
        )
        started = time.perf_counter()
        result = {
            "expression": arguments["expression"],
            "result": calculate(arguments["expression"]),
        }
        emit(
            {
                "type": "tool_completed",
                "data": {
                    "tool_call_id": call["id"],
                    "tool": "calculator",
                    "status": "ok",
                    "result": result,
                    "error": None,
                    "duration_ms": round((time.perf_counter() - started) * 1000),
                },
            }
        )
        results.append(
            ToolMessage(
                content=f"{result['expression']} = {result['result']:g}.",
                tool_call_id=call["id"],
                name="calculator",
            )
        )
    return {"messages": results}


def route(state: State) -> str:
    return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END


builder = StateGraph(State)
builder.add_node("model", model)
builder.add_node("tools", tools)
builder.add_edge(START, "model")
builder.add_conditional_edges("model", route, ["tools", END])
builder.add_edge("tools", "model")
graph = builder.compile()
