"""A tool that needs the user's approval, registered by ``--app``: the README's example.

    NETRA_CONFIG=examples/approvals.toml make run

(``examples/approvals.toml`` names this module in ``server.app`` and defines the ``mailer``
agent, whose one tool is ``send_email``.) Pick *mailer* for a new chat and write
``send_email {"to": "ana@example.com", "body": "Lunch at 1?"}``: the offline model calls the
tool, the run pauses with an approval card, and the email is "sent" once you approve.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from netra.context import UserExecutionContext
from netra.instance import Netra
from netra.tools.tool import SideEffects, tool


@tool(side_effects=SideEffects.UNSAFE, requires_approval=True, timeout_s=10, permission="chat")
async def send_email(
    ctx: UserExecutionContext,  # optional: who is calling (never from the model)
    to: Annotated[str, Field(max_length=320)],
    body: str,
) -> dict[str, str]:
    """Send an email for the user."""  # the first paragraph is the description
    # A real tool would hand the email to a mail service here; this one only says it did.
    return {"status": "sent", "to": to, "from_user": ctx.user_id}


def setup(netra: Netra) -> None:
    """Called by ``netra serve --app examples.approvals:setup`` before serving."""
    netra.tools.register("send_email", send_email)
