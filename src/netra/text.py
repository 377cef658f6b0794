"""Text from clients that Netra stores and sends back: one rule for every edge and backend.

Valid Unicode (no lone surrogates such as ``"\\ud800"``, which cannot be encoded to send) and
no NUL characters (PostgreSQL refuses them in text columns; SQLite would take them, so one
rule keeps both backends alike). Anything else is refused as invalid input, never stored.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field


def check_text(text: str) -> str:
    """``text`` if it can be stored and sent everywhere; ``ValueError`` saying why not."""
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return text


Text = Annotated[
    str, AfterValidator(check_text), Field(json_schema_extra={"not": {"pattern": "\\u0000"}})
]
"""A string field of a request body or a frame, checked by ``check_text``. Its JSON schema
says "no NUL"; lone surrogates are refused too, which a JSON schema cannot express."""
