"""The offline model: Netra's embedded default, so the product works with no key and no network.

Deterministic. When the user's message clearly asks for arithmetic it calls the
``calculator`` tool; for the time or date it calls ``clock``; both at once when asked both.
A message naming any of its tools followed by a JSON object calls that tool with those
arguments (``send_email {"to": "ana@example.com", "body": "Lunch?"}``), so every tool — one
an ``--app`` setup registered, an MCP server's — can be tried without a model.
After the tools answer it reports their results. Asked only to "count to N" (N up to
10,000), it answers the numbers 1 to N: a long answer of known length and pace, for the
benchmarks of the event path (bench/compare.py). Asked for a summary of turns that no longer
fit a window, it counts the questions (``netra.models.summary.offline_summary``). Otherwise it
says plainly what it is.
Text is streamed word by word, with a configurable pause so streaming is visible.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import zoneinfo
from collections.abc import AsyncIterator, Sequence
from typing import Any

from netra.models.base import (
    ChatMessage,
    ModelRequest,
    StreamPart,
    TextDelta,
    ToolCallRequest,
    Usage,
    estimate_tokens,
    tokens_of_length,
)
from netra.models.summary import is_summary_request, offline_summary

_WORD_OPERATORS = (
    (re.compile(r"\bmultiplied by\b|\btimes\b|×"), "*"),
    (re.compile(r"\bdivided by\b|÷"), "/"),
    (re.compile(r"\bplus\b"), "+"),
    (re.compile(r"\bminus\b"), "-"),
    (re.compile(r"\bto the power of\b|\^"), "**"),
)
_EXPRESSION = re.compile(
    r"(?:(?:sqrt|abs|round|floor|ceil|log|sin|cos|tan|exp)\s*\(|\bpi\b|[\d.()+\-*/%\s])+"
)
_OPERATOR_BETWEEN = re.compile(r"[\d)]\s*(?:\*\*|[-+*/%])\s*[-+(\d.a-z]|(?:sqrt|abs|log|exp)\s*\(")
_TIME_QUESTION = re.compile(
    r"\b(what time|time is it|current time|the time|time now|time in|what(?:'s| is) the date|"
    r"today'?s date|what day|which day|date today)\b"
)
_IANA = re.compile(r"\b([A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_+\-0-9]+)+)\b")
_SIGNATURE = "(Netra's built-in offline model: no API key, no network.)"
_COUNT = re.compile(r"\s*count to (\d{1,5})\s*[.!]?\s*", re.IGNORECASE)
MAX_COUNT = 10_000


@functools.cache
def _city_zones() -> dict[str, str]:
    """'new york' → 'America/New_York', for every zone on this machine."""
    zones: dict[str, str] = {}
    for name in sorted(zoneinfo.available_timezones()):
        city = name.rsplit("/", 1)[-1].replace("_", " ").lower()
        if "/" in name:
            zones.setdefault(city, name)
    return zones


def find_expression(text: str) -> str | None:
    """The arithmetic the text asks for, normalised for the calculator, or None."""
    lowered = text.lower()
    for pattern, operator in _WORD_OPERATORS:
        lowered = pattern.sub(f" {operator} ", lowered)
    best = ""
    for match in _EXPRESSION.finditer(lowered):
        candidate = match.group(0).strip().rstrip(".").strip()
        has_digit = any(ch.isdigit() for ch in candidate)
        if has_digit and _OPERATOR_BETWEEN.search(candidate) and len(candidate) > len(best):
            best = candidate
    if not best:
        return None
    best = re.sub(r"\s+", " ", best)
    return best if best.count("(") == best.count(")") else best.strip("()")


def find_timezone(text: str) -> str | None:
    """An IANA zone named in the text, or a city such as 'Tokyo'; None means UTC/unspecified."""
    available = zoneinfo.available_timezones()
    for match in _IANA.finditer(text):
        if match.group(1) in available:
            return match.group(1)
    if re.search(r"\b(utc|gmt)\b", text.lower()):
        return "UTC"
    place = re.search(r"\bin ([a-zA-Z .'-]+)", text)
    if place:
        words = place.group(1).strip(" ?.!").lower().split()
        zones = _city_zones()
        for size in range(min(len(words), 3), 0, -1):
            for start in range(len(words) - size + 1):
                zone = zones.get(" ".join(words[start : start + size]))
                if zone:
                    return zone
    return None


def find_named_call(text: str, tools: set[str]) -> tuple[str, dict[str, Any]] | None:
    """A tool the text names, followed by a JSON object of its arguments, or None."""
    decoder = json.JSONDecoder()
    for name in sorted(tools, key=len, reverse=True):
        for match in re.finditer(rf"(?<![\w-]){re.escape(name)}\s*(?=\{{)", text):
            try:
                arguments, _ = decoder.raw_decode(text, match.end())
            except json.JSONDecodeError:
                continue
            if isinstance(arguments, dict):
                return name, arguments
    return None


def asks_for_time(text: str) -> bool:
    return bool(_TIME_QUESTION.search(text.lower()))


def count_to(text: str) -> int | None:
    """N when the whole message is "count to N" with 1 <= N <= ``MAX_COUNT``, else None."""
    match = _COUNT.fullmatch(text)
    if match is None:
        return None
    limit = int(match.group(1))
    return limit if 1 <= limit <= MAX_COUNT else None


class OfflineModel:
    """The deterministic built-in model (id ``offline``)."""

    def __init__(self, *, chunk_delay_s: float = 0.0) -> None:
        self._delay = chunk_delay_s

    @property
    def id(self) -> str:
        return "offline"

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamPart]:
        tools = {tool.name for tool in request.tools}
        messages = request.messages
        prompt_tokens = sum(estimate_tokens(message.content) for message in messages)
        last = messages[-1] if messages else ChatMessage("user", "")
        if last.role == "user" and (limit := count_to(last.content)) is not None:
            # Word by word: a long count holds no list of its words while it streams.
            for number in range(1, limit + 1):
                if self._delay:
                    await asyncio.sleep(self._delay)
                yield TextDelta(str(number) if number == 1 else f" {number}")
            yield Usage(prompt_tokens, _count_tokens(limit))
            return
        if is_summary_request(request):
            text = offline_summary(request)
        elif last.role == "user":
            calls = self._plan_tools(last.content, tools, len(messages))
            if calls:
                for call in calls:
                    yield call
                yield Usage(prompt_tokens, 12 * len(calls))
                return
            text = self._introduce(last.content, tools)
        else:
            text = self._report(_trailing_tool_results(messages))
        words = text.split(" ")
        for index, word in enumerate(words):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield TextDelta(word if index == 0 else f" {word}")
        yield Usage(prompt_tokens, estimate_tokens(text))

    @staticmethod
    def _plan_tools(text: str, tools: set[str], position: int) -> list[ToolCallRequest]:
        named = find_named_call(text, tools)
        if named is not None:
            return [ToolCallRequest(f"call_{position}_{named[0]}", named[0], named[1])]
        calls = []
        expression = find_expression(text) if "calculator" in tools else None
        if expression:
            calls.append(
                ToolCallRequest(f"call_{position}_calc", "calculator", {"expression": expression})
            )
        if "clock" in tools and asks_for_time(text):
            zone = find_timezone(text) or "UTC"
            calls.append(ToolCallRequest(f"call_{position}_clock", "clock", {"timezone": zone}))
        return calls

    @staticmethod
    def _introduce(text: str, tools: set[str]) -> str:
        quoted = " ".join(text.split())
        if len(quoted) > 200:
            quoted = quoted[:200] + "…"
        skills = []
        if "calculator" in tools:
            skills.append('work out arithmetic with the calculator (try "what is 12*7?")')
        if "clock" in tools:
            skills.append('tell the time anywhere (try "what time is it in Tokyo?")')
        others = sorted(tools - {"calculator", "clock"})
        if others:
            skills.append(
                f"call {', '.join(others)} when you write its name and its arguments as JSON"
            )
        can = f" I can {' and '.join(skills)}." if skills else ""
        return (
            f'You wrote: "{quoted}". I am Netra\'s built-in offline model: I run without an API '
            f"key or network access, so I cannot hold an open conversation.{can} To chat with a "
            "real model, point Netra at OpenAI, Anthropic or a local server (see the README)."
        )

    @staticmethod
    def _report(results: Sequence[ChatMessage]) -> str:
        lines = []
        for message in results:
            lines.append(_describe_result(message.name or "tool", message.content))
        body = " ".join(lines) if lines else "The tools returned nothing."
        return f"{body}\n\n{_SIGNATURE}"


def _trailing_tool_results(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    return list(reversed(results))


def _describe_result(tool: str, content: str) -> str:
    try:
        payload: Any = json.loads(content)
    except json.JSONDecodeError:
        payload = content
    if isinstance(payload, dict) and "error" in payload:
        error = payload["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        return f"The {tool} tool failed: {message}."
    if tool == "calculator" and isinstance(payload, dict):
        return f"{payload.get('expression')} = {payload.get('result')}."
    if tool == "clock" and isinstance(payload, dict):
        return (
            f"It is {payload.get('time')} on {payload.get('weekday')}, {payload.get('date')} "
            f"in {payload.get('timezone')}."
        )
    return f"The {tool} tool returned: {content}"


def _count_tokens(limit: int) -> int:
    """``estimate_tokens`` of "1 2 … limit", without writing it out."""
    chars, width, low = limit - 1, 1, 1  # the spaces, then the digits, width by width
    while low <= limit:
        high = min(limit, low * 10 - 1)
        chars += (high - low + 1) * width
        width, low = width + 1, low * 10
    return tokens_of_length(chars)
