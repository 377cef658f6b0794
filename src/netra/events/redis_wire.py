"""What crosses Redis: the channel of each user, and the bytes of one published message.

Channel: ``<prefix>:user:<user_id>`` — one per user, so an instance hears only the users
whose sockets it holds.

Message: one JSON header line, then the stored envelopes, one per line, byte for byte as
in the event log (so every instance sends sockets exactly what ``resume`` would)::

    {"origin":"bus_…","events":[[seq,"type","run_id"|null],…]}
    {"type":"agent_started","seq":41,…}
    {"type":"message_delta","seq":42,…}

Envelopes are compact JSON, which escapes control characters inside strings, so an
envelope never contains a raw newline. ``origin`` names the publishing instance, which
delivers to its own sockets directly and ignores its own messages.

Notices travel on ``<prefix>:notices`` as one JSON object,
``{"origin":"bus_…","kind":"queued"|"cancel"|"revoked"|"account","user_id":…,"run_id":…,
"session_id":…}``; the publishing instance handled its own when it sent it and ignores the
echo.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from netra.events.bus import NOTICE_KINDS, Notice
from netra.events.envelope import Event, EventType
from netra.json_text import dumps

_NEWLINE = b"\n"


class UserChannels:
    """Channel names of one deployment (one prefix)."""

    def __init__(self, prefix: str) -> None:
        self._head = f"{prefix}:user:"
        self.notices = f"{prefix}:notices"
        """The channel every instance listens on for notices about the runs table."""

    def of(self, user_id: str) -> str:
        return f"{self._head}{user_id}"

    def user(self, channel: str) -> str | None:
        """The user a channel belongs to; ``None`` for a channel not named by this prefix."""
        if channel.startswith(self._head) and len(channel) > len(self._head):
            return channel[len(self._head) :]
        return None


class MalformedMessage(ValueError):
    """Raised when bytes on a user channel are not a bus message (a foreign publisher)."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    """Stored events of one user, published by one instance."""

    origin: str
    """Id of the publishing bus."""
    events: Sequence[Event]
    """In seq order."""

    def encode(self) -> bytes:
        header = {
            "origin": self.origin,
            "events": [[event.seq, event.type.value, event.run_id] for event in self.events],
        }
        lines = [dumps(header)]
        lines.extend(event.body for event in self.events)
        return "\n".join(lines).encode()

    @classmethod
    def decode(cls, user_id: str, data: bytes) -> BusMessage:
        head, *bodies = data.split(_NEWLINE)
        try:
            header = json.loads(head)
            origin = header["origin"]
            described = header["events"]
            if not isinstance(origin, str) or len(described) != len(bodies):
                raise MalformedMessage("header and envelopes disagree")
            events = [
                Event(user_id, int(seq), EventType(kind), run_id, body.decode())
                for (seq, kind, run_id), body in zip(described, bodies, strict=True)
            ]
        except MalformedMessage:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedMessage(f"not a bus message: {type(exc).__name__}: {exc}") from exc
        events.sort(key=lambda event: event.seq)
        return cls(origin, events)


def encode_notice(origin: str, notice: Notice) -> bytes:
    return json.dumps(
        {
            "origin": origin,
            "kind": notice.kind,
            "user_id": notice.user_id,
            "run_id": notice.run_id,
            "session_id": notice.session_id,
        }
    ).encode()


def decode_notice(data: bytes | str) -> tuple[str, Notice]:
    """``(origin, notice)``; raises ``MalformedMessage`` on anything that is not a notice."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise MalformedMessage("not JSON") from exc
    if not isinstance(raw, dict) or raw.get("kind") not in NOTICE_KINDS:
        raise MalformedMessage("not a notice")
    origin, user_id, run_id = raw.get("origin"), raw.get("user_id"), raw.get("run_id")
    session_id = raw.get("session_id")
    if not isinstance(origin, str) or not all(
        value is None or isinstance(value, str) for value in (user_id, run_id, session_id)
    ):
        raise MalformedMessage("not a notice")
    return origin, Notice(raw["kind"], user_id, run_id, session_id)
