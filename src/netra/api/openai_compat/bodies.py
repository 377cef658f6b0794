"""The request bodies of the OpenAI-compatible API, and the models of its answers (what
``GET /openapi.json`` documents; ``netra.api.openai_compat.mapping`` builds the answers).

A body takes OpenAI's fields that Netra acts on and ignores the others (``temperature``,
``max_tokens`` …: the agent decides), as the SDKs send many. The conversation is text: a
message's ``content`` is a string or a list of text parts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from netra.api.views import View
from netra.errors import InvalidRequest
from netra.runs.answers import Turn
from netra.text import Text

ModelField = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=300,
        description="An agent the caller may start (`GET /v1/models`), or `agent@model` to "
        "run it on another model the agent allows; else 404 `model_not_found`.",
    ),
]
MAX_MESSAGES = 1000


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "input_text", "output_text"]
    text: Text


Content = Text | Annotated[list[TextPart], Field(max_length=100)]


def text_of(content: Content | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


class Message(BaseModel):
    """A message of the conversation: ``system`` and ``developer`` messages are ignored
    (the agent has its own instructions), ``user`` and ``assistant`` ones are its turns."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: Content | None = None


def conversation(messages: list[Message], param: str) -> tuple[list[Turn], str]:
    """The turns before the last message, and the last one's text: the run's question,
    which must be a user message with text."""
    turns = [
        Turn("user" if m.role == "user" else "assistant", text_of(m.content))
        for m in messages
        if m.role in ("user", "assistant") and text_of(m.content).strip()
    ]
    last = messages[-1] if messages else None
    if last is None or last.role != "user" or not turns or turns[-1].role != "user":
        raise InvalidRequest(f"the last of {param} must be a user message with text")
    return turns[:-1], turns[-1].content


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    """Send a last chunk with the usage (and no choices) before ``[DONE]``."""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"model": "assistant", "messages": [{"role": "user", "content": "what is 12*7?"}]}
            ]
        },
    )
    model: ModelField
    messages: Annotated[
        list[Message],
        Field(
            min_length=1,
            max_length=MAX_MESSAGES,
            description="The conversation; the last one, a user message, is the run's "
            "question, the user and assistant messages before it its history (else 400).",
        ),
    ]
    stream: bool = False
    stream_options: StreamOptions | None = None


class ResponseRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"model": "assistant", "input": "what is 12*7?"}]},
    )
    model: ModelField
    input: Annotated[
        Annotated[Text, Field(min_length=1, json_schema_extra={"pattern": r"\S"})]
        | Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)],
        Field(
            description="The question, or a conversation ending with it (as `messages` of "
            "Chat Completions; else 400). Not longer than `limits.max_message_chars`."
        ),
    ]
    stream: bool = False


# ---- answers -------------------------------------------------------------------------------
class ModelView(View):
    id: str
    """An agent's name: what ``model`` names."""
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(View):
    object: Literal["list"]
    data: list[ModelView]


class NetraExtension(View):
    thread_id: str
    """The Netra thread the run's conversation is stored in."""


class ChatUsageDetails(View):
    cached_tokens: int


class ChatUsage(View):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: ChatUsageDetails


class ChatMessageView(View):
    role: Literal["assistant"]
    content: str
    refusal: None


class ChatChoice(View):
    index: int
    message: ChatMessageView
    finish_reason: Literal["stop", "length"]
    logprobs: None


class ChatCompletion(View):
    """A run's answer as a ``chat.completion``; ``id`` is the run's id."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    """``agent@model``: the run's agent and the model it ran on."""
    choices: list[ChatChoice]
    usage: ChatUsage
    netra: NetraExtension


class OutputText(View):
    type: Literal["output_text"]
    text: str
    annotations: list[str]
    logprobs: list[str]


class OutputMessage(View):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    status: Literal["in_progress", "completed"]
    content: list[OutputText]


class InputDetails(View):
    cached_tokens: int


class OutputDetails(View):
    reasoning_tokens: int


class ResponseUsage(View):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputDetails
    output_tokens_details: OutputDetails


class ResponseError(View):
    code: str
    message: str


class ResponseView(View):
    """A run as a ``response`` object; ``id`` is the run's id."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["in_progress", "completed", "failed", "cancelled"]
    model: str
    """``agent@model``: the run's agent and the model it ran on."""
    output: list[OutputMessage]
    usage: ResponseUsage | None
    error: ResponseError | None
    netra: NetraExtension
